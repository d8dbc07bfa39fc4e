"""The admin plane: the `barid` command line (and later the web admin and REST API).

Owns: turning operator intent into calls on gateway/, keys/ and policies/, and
presenting results as text or JSON. Must not: be imported by gateway/.
"""
