"""The delivery worker (``RetryWorker``) and the ``Sweeper``: thin loops over the services.

May import runtime, service, queue, observability, settings, domain and the kernel.
"""
