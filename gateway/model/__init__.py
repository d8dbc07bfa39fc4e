"""The values shared by the steps a message passes: plain data, below every step.

Owns: the shapes handed from one package to the next (`gateway.model.message`).
Must not: import any gateway package but `gateway.mime`'s values, nor hold
behaviour or I/O; a step that needs a value imports it from here.
"""
