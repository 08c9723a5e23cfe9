# The WSGI hello of the benchmark: the same app behind holdfast (2 processes) and gunicorn -w 2.
BODY = b'Hello from a WSGI app\n'
HEADERS = [('Content-Type', 'text/plain'), ('Content-Length', str(len(BODY)))]


def application(environ, start_response):
    start_response('200 OK', HEADERS)
    return [BODY]
