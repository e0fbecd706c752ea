"""The `shelfid` command groups, each module one group: its parsers next to the handlers they call.

edge/cli.py puts them together under one parser and turns errors into messages and exit codes; a handler
parses nothing itself and calls one library function. common.py holds what several groups share: where the
config comes from and the help texts that say so.
"""
