"""The values shared by the steps a message passes: plain data, below every step.

Owns: the shapes handed from one package to the next (`gateway.model.message`)
and the delivery target with its pure routing and text form (`gateway.model.target`).
Must not: import any gateway package but `gateway.mime`'s values, nor do I/O;
a step that needs a value imports it from here.
"""
