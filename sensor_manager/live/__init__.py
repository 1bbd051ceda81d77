"""Live changes to a running fleet (docs/live-changes.md): config hot reload, `set`, `rollout`, `inject`.

`settings` (the settings file of each role, per runtime), `reload` (validate a config file and
rewrite those files, or record why not), `applied` (wait until services report a settings digest),
`editing` (`set`: a round-trip edit of the config file), `rollout` (firmware changes in the plan),
`injection` (anomaly episodes on request). The services' side is `simulator/live.py` and the
uploader's own settings polling; the local supervisor runs `runtimes/config_watch.py`.
"""
