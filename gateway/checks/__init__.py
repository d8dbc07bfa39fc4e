"""Checks: what a message must carry before it is accepted -- the ordered checks of
submission and transfer, their verdict, and the running routing policy.
"""
