"""IMAP4rev1 for standard mail clients, served by pymap over Barid's mailbox store."""
