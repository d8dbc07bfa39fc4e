"""Mail clients set themselves up (docs/CONTRACT.md §10): Thunderbird autoconfig, Outlook
autodiscover and an Apple configuration profile, built from `server.hostname` and
the listening ports. `model` holds the shared values, one module per client
format builds its document (pure), `routes` serves them on the public listener.
"""
