# The teaching tools' page, rendered in a real browser.
#   make explain-check   orochi explain on the shipped models, rendered by headless Chromium (Debian's
#                        chromium, installed when missing): fails on a render error or a missing element,
#                        and writes the screenshot docs/plots/explain.png

EXPLAIN_PROMPT ?= 設定ファイルを開くには、エディタを使います。
EXPLAIN_DIR    := build/explain
CHROMIUM       := chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars

.PHONY: explain-check

explain-check: build
	@dpkg-query -W -f='$${Status}' chromium 2>/dev/null | grep -q "install ok installed" || \
	  { $(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends chromium; }
	mkdir -p $(EXPLAIN_DIR)
	$(RELEASE) explain $(foreach m,$(MODELS),--model $(m)) --prompt "$(EXPLAIN_PROMPT)" --out $(EXPLAIN_DIR)/page.html
	$(CHROMIUM) --dump-dom file://$(abspath $(EXPLAIN_DIR))/page.html > $(EXPLAIN_DIR)/dom.html 2> $(EXPLAIN_DIR)/chromium.log
	python3 Scripts/explain_check.py $(EXPLAIN_DIR)/dom.html $(words $(MODELS)) \
	  $$(for m in $(MODELS); do $(RELEASE) inspect --model $$m | awk '/^layers /{print $$2}'; done | awk '{ s += $$1 } END { print s }')
	$(CHROMIUM) --window-size=1500,4400 --screenshot=$(abspath docs/plots/explain.png) file://$(abspath $(EXPLAIN_DIR))/page.html 2>> $(EXPLAIN_DIR)/chromium.log
	@test -s docs/plots/explain.png && echo "wrote docs/plots/explain.png"
