"""Contracts shared by the service (writer) and the dataclient, jobs and analysis (readers)."""
