# Tokenizer (issue 5): reference fixtures and benchmark. Neither is needed by `make test`.
# An existing venv (e.g. VENV=/work/venv) is used as is; `make venv` runs only when it is missing.
.PHONY: tokenizer-fixtures tokenizer-bench tokenizer-test

# Trains the tokenizer variants with sentencepiece / tokenizers on Debian's manpages-ja and
# writes tokenizer files + reference ids under Tests/OrochiTests/Fixtures/tokenizers.
tokenizer-fixtures:
	@test -x $(PYTHON) || $(MAKE) venv VENV=$(VENV)
	$(PYTHON) Scripts/tokenizers/make_tokenizer_fixtures.py --out Tests/OrochiTests/Fixtures/tokenizers

# Encode MB/s of the release binary beside the reference Python bindings, same text, same run.
tokenizer-bench:
	@test -x $(PYTHON) || $(MAKE) venv VENV=$(VENV)
	$(SWIFT) build -c release --product orochi
	$(PYTHON) Scripts/tokenizers/bench_tokenizers.py --binary $(RELEASE)

tokenizer-test:
	$(SWIFT) test --filter Tokenizer
