"""What runs on the host at activation: the manifest, the generations on
the ramfs, ownership, templates, links and restarts.

The boot path: nothing here imports nixseal.repo (the admin side) or
another verb, so `nixseal install` loads only what it uses.
"""
