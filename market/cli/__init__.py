"""The CLIs' framework (``seller_client.py``, ``buyer_client.py`` are built from it).

    shell      the read-run loop and the session; ``cli_main``
    commands   a command's values: read, checked, refused in the prompt's words; the menu
    prompts    questions at a terminal: y/n, Tab completion, history
    views      how things are shown to a person: money, tables by display width, names
    frontends  how a CLI reaches its frontends: the Hello check, several of them, resends
"""
