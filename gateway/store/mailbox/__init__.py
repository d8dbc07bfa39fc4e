"""Mailboxes: folders, stored mails, UIDs, flags and change tracking (no IMAP syntax here)."""
