"""Use cases, one transaction each: delivery attempts, publishing, endpoints, dead letters.

May import storage, queue, sender, observability, settings, domain and the kernel. Raises only
``hookline.errors`` types; the API maps them to status codes.
"""
