# The two commands of the README. Both set up .venv on first use.
.PHONY: demo test

demo:
	bin/dev demo

test:
	bin/dev test
