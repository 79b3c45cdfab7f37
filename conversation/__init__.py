"""The chat use case every front end shares (the web UI, /v1, the CLI through the API): the turn, goals,
admission, answers, ownership, profiles, conversation storage, limits and link signing. Jobs are followed
through the queue (spinbot.queue: `admit` answers with the `Job`, JobQueue.follow for the routes).

It raises spinbot.errors.SpinbotError (a Problem for a refused request); web/problems.py alone maps them
to HTTP. It imports planner, evaluator and spinbot, never web or shell.
"""
