"""The hook path: what runs after every tool call of every agent, fenced in.

`python -I -S hooks/fast.py ...` imports only this package, `podctl.broker.wire` and
`podctl.broker.codec`, and from the standard library no more than a bare interpreter already has
(no `json`, `socket`, `re`, `typing`, `enum`): `tests/hooks/test_hooks.py::test_the_hook_path_is_fenced_in`
checks it. Everything the hook needs to know about its CLI (which podctl event this native event
is, whether to inject, how to shape the answer) is on its command line, written by the CLI's
adapter; no adapter is imported here. Everything outside this package is ordinary typed Python.
"""
