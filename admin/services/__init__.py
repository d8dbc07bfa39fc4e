"""The management plane's use cases: one function per administrative action.

Owns: the functions the CLI, the admin REST API and the web admin all call, each
taking an `Actor` (who acts, in which role and scope) and typed input.
Must not: parse command lines, speak HTTP or render anything.
"""
