# The smallest WSGI app holdfast serves: `holdfast start examples/wsgi` finds this file as Passenger
# does and runs it with python3 (set "python" in holdfast.json for another one, e.g. a virtualenv's).
import os


def application(environ, start_response):
    body = ('Hello from a WSGI app, pid %d\n' % os.getpid()).encode()
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(body)))])
    return [body]
