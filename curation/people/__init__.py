"""People: who may do what (permissions), users and passwords, and sign-in sessions."""
