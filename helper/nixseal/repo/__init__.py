"""What runs on the admin's machine: the rules file and its state, drift
against the age files, and the repository context the verbs work in.

Nothing here imports nixseal.engine or nixseal.cli.
"""
