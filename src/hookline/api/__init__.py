"""The public HTTP API (FastAPI): thin handlers over the services, one router per resource.

Owns routing, request/response schemas, bearer-token auth, the mapping of ``hookline.errors`` to
status codes (``errors``), the OpenAPI document and the offline Swagger UI. Handlers validate,
call one service method and shape its result.

May import runtime, service, domain, settings and the kernel (it shapes the ORM rows services
return, and names their types, but never queries storage or touches the queue itself).
"""
