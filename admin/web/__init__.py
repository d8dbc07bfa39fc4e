"""The web admin: server-rendered pages under /admin/ on the admin listener."""
