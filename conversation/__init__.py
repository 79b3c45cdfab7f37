"""The chat use case every front end shares (the web UI, /v1, the CLI through the API): the turn, goals,
admission, answers, ownership, profiles, conversation storage, the event hub, limits and link signing.

It raises spinbot.errors.SpinbotError (a Problem for a refused request); web/problems.py alone maps them
to HTTP. It imports planner, evaluator and spinbot, never web or shell.
"""
