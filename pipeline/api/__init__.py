"""leadpipe's HTTP API: which routers it is made of (``app``) and ``leadpipe serve`` (``cli``)."""
