"""Reference renderings of the chat templates in Server/Tests/OrochiServerTests/Fixtures/templates.

Renders each template with jinja2 configured as transformers' apply_chat_template configures it
(ImmutableSandboxedEnvironment, trim_blocks=True, lstrip_blocks=True, raise_exception as a global)
on a few conversations, and writes expected.json beside the templates: the server's own renderer
(Sources/OrochiServer/ChatTemplate.swift) must produce the same text or raise the same message.

    python Scripts/server/make_template_fixtures.py   # needs jinja2 (transformers' requirement)
"""
import json
import pathlib

from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = pathlib.Path(__file__).resolve().parents[2] / "Server/Tests/OrochiServerTests/Fixtures/templates"

CONVERSATIONS = {
    "system_first": [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Hello!"},
        {"role": "assistant", "content": " Hi there. "},
        {"role": "user", "content": "  How are you?  "},
    ],
    "japanese": [
        {"role": "user", "content": "こんにちは"},
        {"role": "assistant", "content": "やあ、\n元気？"},
        {"role": "user", "content": "元気です。\tありがとう"},
    ],
    "single_user": [
        {"role": "user", "content": "Hi"},
    ],
    "not_alternating": [
        {"role": "user", "content": "a"},
        {"role": "user", "content": "b"},
    ],
}


class TemplateRaised(Exception):
    pass


def raise_exception(message):
    raise TemplateRaised(message)


def main():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    cases = []
    for path in sorted(ROOT.glob("*.jinja")):
        template = env.from_string(path.read_text(encoding="utf-8"))
        for name, messages in CONVERSATIONS.items():
            for add in (False, True):
                case = {"template": path.name, "conversation": name, "add_generation_prompt": add}
                try:
                    case["output"] = template.render(messages=messages, bos_token="<s>", eos_token="</s>",
                                                     add_generation_prompt=add)
                except TemplateRaised as e:
                    case["raises"] = str(e)
                except TemplateError as e:
                    case["error"] = str(e)
                cases.append(case)
    out = {"conversations": CONVERSATIONS, "cases": cases}
    (ROOT / "expected.json").write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"{len(cases)} cases -> {ROOT / 'expected.json'}")


if __name__ == "__main__":
    main()
