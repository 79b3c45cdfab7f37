"""The entrypoints: the `spinbot` command line, `spinbot up`, the chat client, submit, plan and evaluate.

Nothing imports this package (tests/test_layering.py); it may import every other one.
"""
