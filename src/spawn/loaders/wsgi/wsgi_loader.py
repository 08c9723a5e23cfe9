# holdfast's WSGI loader: runs one process of a Python WSGI app (PEP 3333) the way Passenger's
# wsgi-loader does. Standard library only, so it runs on any python3 >= 3.7, a virtualenv's included.
#
#   python wsgi_loader.py STARTUP_FILE      (cwd = the app dir; HOLDFAST_APP_SOCKET = socket path)
#
# 1. Imports STARTUP_FILE (passenger_wsgi.py) and takes its `application`. Any exception here (an
#    ImportError, a SyntaxError, Django settings that raise) is printed with its traceback and the
#    process exits 1 *before* it listens: holdfast sees a spawn error carrying that output.
# 2. Listens on the private Unix socket; holdfast counts the process ready once it accepts there.
# 3. Serves HTTP/1.1 from holdfast's proxy (keep-alive, one request at a time, as a Passenger
#    process does), on however many idle connections the proxy keeps open.
#
# The HTTP side is hand-written on `socket` rather than http.server/wsgiref: those cost several
# times more per request, and the only client is holdfast itself (which already checked the request
# syntax, removed hop-by-hop headers and set X-Forwarded-*), so a lean parser is enough.

import importlib.util
import io
import os
import re
import selectors
import signal
import socket
import sys
import tempfile
import traceback
from urllib.parse import unquote_to_bytes

MAX_HEADER_BYTES = 64 * 1024
# Request bodies up to this size stay in memory; larger ones spill into a temp file.
MEMORY_BODY_BYTES = 1024 * 1024
RECV_BYTES = 64 * 1024
# How often an idle process checks that holdfast (its parent) is still there.
PARENT_CHECK_SECONDS = 1.0

# Statuses whose responses never have a body (RFC 9112 §6.3).
NO_BODY_STATUSES = {204, 304}

# What an app may put in a status line and headers (RFC 9110 §5.1, §5.5): a CR or LF from a value the
# app echoed (a redirect target, a file name) would end the header early and start one of the
# visitor's choosing (response splitting).
STATUS_LINE = re.compile(r'[1-9][0-9][0-9](?: [\t\x20-\x7e\x80-\xff]*)?')
TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
FIELD_VALUE = re.compile(r'[\t\x20-\x7e\x80-\xff]*')


def check_head(status, headers):
    """Raises ValueError, in the app's start_response call (as PEP 3333 asks), for a head that is not HTTP."""
    if not isinstance(status, str) or not STATUS_LINE.fullmatch(status):
        raise ValueError('invalid status %r: a str such as "200 OK", without control characters' % (status,))
    for header in headers:
        name, value = header
        if not isinstance(name, str) or not TOKEN.fullmatch(name):
            raise ValueError('invalid header name %r' % (name,))
        if not isinstance(value, str) or not FIELD_VALUE.fullmatch(value):
            raise ValueError('invalid value for header %s: %r (a str without control characters)' % (name, value))

ERROR_500 = (b'HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n'
             b'Content-Length: 21\r\n\r\nInternal Server Error')
ERROR_400 = (b'HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n'
             b'Content-Length: 11\r\nConnection: close\r\n\r\nBad Request')
ERROR_431 = (b'HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain\r\n'
             b'Content-Length: 31\r\nConnection: close\r\n\r\nRequest Header Fields Too Large')


def log(message):
    sys.stderr.write('holdfast wsgi loader: %s\n' % message)
    sys.stderr.flush()


def load_application(startup_file):
    """Imports the startup file as a module (named after it, `passenger_wsgi` as under Passenger)."""
    name = os.path.splitext(os.path.basename(startup_file))[0]
    spec = importlib.util.spec_from_file_location(name, startup_file)
    if spec is None or spec.loader is None:
        raise ImportError('cannot load %s as a Python module' % startup_file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    application = getattr(module, 'application', None)
    if application is None:
        raise AttributeError('%s defines no `application` (the WSGI callable holdfast serves)' % startup_file)
    if not callable(application):
        raise TypeError('`application` in %s is not callable' % startup_file)
    return application


class BadRequest(Exception):
    def __init__(self, response):
        Exception.__init__(self)
        self.response = response


class ClientGone(Exception):
    """The proxy closed the connection (at rest: normal; mid-request: the visitor went away)."""


class Connection(object):
    """One keep-alive connection from holdfast's proxy, with what was read beyond the last request."""

    __slots__ = ('sock', 'buf')

    def __init__(self, sock):
        self.sock = sock
        self.buf = b''

    def fill(self):
        data = self.sock.recv(RECV_BYTES)
        if not data:
            raise ClientGone()
        self.buf += data

    def read_head(self):
        """The request line and headers, up to and without the blank line."""
        while True:
            end = self.buf.find(b'\r\n\r\n')
            if end >= 0:
                head = self.buf[:end]
                self.buf = self.buf[end + 4:]
                return head
            if len(self.buf) > MAX_HEADER_BYTES:
                raise BadRequest(ERROR_431)
            self.fill()

    def read_exact(self, n, out):
        while n > 0:
            if not self.buf:
                self.fill()
            piece = self.buf[:n]
            self.buf = self.buf[n:]
            out.write(piece)
            n -= len(piece)

    def read_line(self):
        while True:
            end = self.buf.find(b'\r\n')
            if end >= 0:
                line = self.buf[:end]
                self.buf = self.buf[end + 2:]
                return line
            if len(self.buf) > MAX_HEADER_BYTES:
                raise BadRequest(ERROR_400)
            self.fill()

    def read_chunked(self, out):
        while True:
            line = self.read_line()
            try:
                size = int(line.split(b';', 1)[0].strip(), 16)
            except ValueError:
                raise BadRequest(ERROR_400)
            if size < 0:
                raise BadRequest(ERROR_400)
            if size == 0:
                while self.read_line():  # trailers: dropped, as most WSGI servers do
                    pass
                return
            self.read_exact(size, out)
            if self.read_line():
                raise BadRequest(ERROR_400)


def body_buffer(length):
    """The whole request body is read before the app runs (wsgi.input_terminated): holdfast's proxy
    sends it promptly, and the app then never blocks on a slow visitor."""
    if length is not None and length <= MEMORY_BODY_BYTES:
        return io.BytesIO()
    return tempfile.SpooledTemporaryFile(max_size=MEMORY_BODY_BYTES)


class Server(object):
    def __init__(self, application, listener):
        self.application = application
        self.listener = listener
        self.busy = False
        self.stopping = False
        self.parent = os.getppid()
        self.base_environ = {
            'SCRIPT_NAME': '',  # holdfast mounts every app at the root
            'wsgi.version': (1, 0),
            'wsgi.errors': sys.stderr,
            'wsgi.multithread': False,
            'wsgi.multiprocess': True,
            'wsgi.run_once': False,
            'wsgi.input_terminated': True,
            'SERVER_SOFTWARE': 'holdfast',
        }

    def on_signal(self, signum, frame):
        # holdfast drains a process before it sends SIGTERM; a request still running finishes first.
        if self.busy:
            self.stopping = True
        else:
            raise SystemExit(0)

    def serve_forever(self):
        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGINT, self.on_signal)
        selector = selectors.DefaultSelector()
        self.listener.setblocking(False)
        selector.register(self.listener, selectors.EVENT_READ, None)
        while True:
            events = selector.select(PARENT_CHECK_SECONDS)
            if not events:
                if os.getppid() != self.parent:
                    log('holdfast is gone; exiting')
                    return
                continue
            for key, _ in events:
                if key.data is None:
                    self.accept(selector)
                    continue
                connection = key.data
                self.busy = True
                try:
                    keep = self.serve(connection)
                finally:
                    self.busy = False
                if not keep:
                    selector.unregister(connection.sock)
                    connection.sock.close()
                if self.stopping:
                    return

    def accept(self, selector):
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            sock.setblocking(True)
            selector.register(sock, selectors.EVENT_READ, Connection(sock))

    def serve(self, connection):
        """Serves the requests that have arrived on the connection; False when it is to be closed."""
        try:
            while True:
                if not self.serve_one(connection):
                    return False
                # Only go on without the selector when the next request is already here.
                if b'\r\n\r\n' not in connection.buf:
                    return True
        except ClientGone:
            return False
        except BadRequest as bad:
            try:
                connection.sock.sendall(bad.response)
            except OSError:
                pass
            return False
        except OSError:
            return False

    def serve_one(self, connection):
        head = connection.read_head()
        lines = head.split(b'\r\n')
        try:
            method, target, version = lines[0].decode('latin-1').split(' ')
        except ValueError:
            raise BadRequest(ERROR_400)
        http11 = version == 'HTTP/1.1'
        environ = dict(self.base_environ)
        environ['REQUEST_METHOD'] = method
        environ['SERVER_PROTOCOL'] = version
        environ['REQUEST_URI'] = target
        if target[:1] != '/' and '://' in target:  # absolute-form: keep the path and query only
            rest = target.split('://', 1)[1]
            ends = [i for i in (rest.find('/'), rest.find('?')) if i >= 0]
            target = rest[min(ends):] if ends else ''
            if not target.startswith('/'):
                target = '/' + target
        path, _, query = target.partition('?')
        # PEP 3333: PATH_INFO holds the decoded bytes as latin-1 characters.
        environ['PATH_INFO'] = unquote_to_bytes(path).decode('latin-1') if '%' in path else path
        environ['QUERY_STRING'] = query

        for line in lines[1:]:
            name, sep, value = line.partition(b':')
            if not sep:
                raise BadRequest(ERROR_400)
            name = name.decode('latin-1').upper()
            # Dropped, as nginx and Passenger do: X_Forwarded_For would spoof HTTP_X_FORWARDED_FOR.
            if '_' in name:
                continue
            key = name.replace('-', '_')
            if key != 'CONTENT_TYPE' and key != 'CONTENT_LENGTH':
                key = 'HTTP_' + key
            value = value.strip().decode('latin-1')
            if key in environ:
                environ[key] += (';' if key == 'HTTP_COOKIE' else ',') + value
            else:
                environ[key] = value

        connection_tokens = environ.get('HTTP_CONNECTION', '').lower()
        if http11:
            keep_alive = 'close' not in connection_tokens
        else:
            keep_alive = 'keep-alive' in connection_tokens

        scheme = environ.get('HTTP_X_FORWARDED_PROTO', 'http').split(',')[0].strip().lower()
        environ['wsgi.url_scheme'] = 'https' if scheme == 'https' else 'http'
        environ['HTTPS'] = 'on' if scheme == 'https' else 'off'
        # holdfast appends the address it saw to X-Forwarded-For: the last entry is the visitor's
        # (or the load balancer's in front of holdfast; the app decides whom it trusts further).
        forwarded = environ.get('HTTP_X_FORWARDED_FOR')
        environ['REMOTE_ADDR'] = forwarded.rsplit(',', 1)[-1].strip() if forwarded else '127.0.0.1'
        host = environ.get('HTTP_HOST', '')
        if host.startswith('['):
            name, _, rest = host[1:].partition(']')
            port = rest[1:] if rest.startswith(':') else ''
        else:
            name, _, port = host.partition(':')
        environ['SERVER_NAME'] = name or 'localhost'
        environ['SERVER_PORT'] = port or ('443' if scheme == 'https' else '80')

        body = self.read_body(connection, environ)
        environ['wsgi.input'] = body
        try:
            return self.respond(connection.sock, environ, method, http11, keep_alive)
        finally:
            body.close()

    def read_body(self, connection, environ):
        if 'chunked' in environ.get('HTTP_TRANSFER_ENCODING', '').lower():
            body = body_buffer(None)
            connection.read_chunked(body)
            environ['CONTENT_LENGTH'] = str(body.tell())
            del environ['HTTP_TRANSFER_ENCODING']
        else:
            text = environ.get('CONTENT_LENGTH', '')
            if not text:
                return io.BytesIO()
            try:
                length = int(text)
            except ValueError:
                raise BadRequest(ERROR_400)
            if length < 0:
                raise BadRequest(ERROR_400)
            body = body_buffer(length)
            if length:
                if 'HTTP_EXPECT' in environ and environ['HTTP_EXPECT'].lower() == '100-continue':
                    connection.sock.sendall(b'HTTP/1.1 100 Continue\r\n\r\n')
                connection.read_exact(length, body)
        body.seek(0)
        return body

    def respond(self, sock, environ, method, http11, keep_alive):
        """Runs the app for one request and writes its response; False when the connection must close."""
        # The response as the app describes it; sent on the first non-empty body chunk (PEP 3333).
        state = {'status': None, 'headers': None, 'sent': False, 'chunked': False,
                 'length': None, 'written': 0, 'body': True, 'close': not keep_alive}

        def start_response(status, headers, exc_info=None):
            if exc_info is not None:
                try:
                    if state['sent']:
                        raise exc_info[1].with_traceback(exc_info[2])
                finally:
                    exc_info = None
            elif state['status'] is not None:
                raise AssertionError('start_response was called a second time without exc_info')
            check_head(status, headers)
            state['status'] = status
            state['headers'] = headers
            return write

        def send_head(first_chunk, total):
            """total: the body's whole length when known here (the app returned all of it at once)."""
            status = state['status']
            if status is None:
                raise AssertionError('the app returned a body without calling start_response')
            code = int(status[:3])
            if method == 'HEAD' or code in NO_BODY_STATUSES or code < 200:
                state['body'] = False
            out = ['HTTP/1.1 ', status, '\r\n']
            length = None
            for name, value in state['headers']:
                lower = name.lower()
                if lower == 'content-length':
                    length = int(value)  # written below, once
                    continue
                if lower in ('connection', 'transfer-encoding', 'keep-alive'):
                    continue  # hop-by-hop: a WSGI app must not set them; the framing is ours
                out += (name, ': ', value, '\r\n')
            if length is not None:
                out += ('Content-Length: ', str(length), '\r\n')
            elif total is not None and (state['body'] or method == 'HEAD'):
                length = total
                out += ('Content-Length: ', str(total), '\r\n')
            elif state['body'] and http11:
                state['chunked'] = True
                out.append('Transfer-Encoding: chunked\r\n')
            elif state['body']:
                state['close'] = True  # HTTP/1.0: the end of the body is the end of the connection
            state['length'] = length
            if state['close']:
                out.append('Connection: close\r\n')
            out.append('\r\n')
            state['sent'] = True
            head = ''.join(out).encode('latin-1')
            sock.sendall(head + frame(first_chunk) if first_chunk else head)

        def frame(data):
            if not state['body']:
                return b''
            state['written'] += len(data)
            if state['chunked']:
                return b'%x\r\n%s\r\n' % (len(data), data)
            return data

        def write(data):
            if not isinstance(data, bytes):
                raise TypeError('a WSGI app must write bytes, not %s' % type(data).__name__)
            if not state['sent']:
                send_head(data, None)
            elif data:
                framed = frame(data)
                if framed:
                    sock.sendall(framed)

        result = None
        try:
            result = self.application(environ, start_response)
            if isinstance(result, (list, tuple)) and len(result) == 1 and not state['sent']:
                data = result[0]
                if not isinstance(data, bytes):
                    raise TypeError('a WSGI app must return bytes, not %s' % type(data).__name__)
                send_head(data, len(data))
            else:
                for data in result:
                    if not isinstance(data, bytes):
                        raise TypeError('a WSGI app must return bytes, not %s' % type(data).__name__)
                    if data:
                        write(data)
                if not state['sent']:
                    send_head(b'', 0)
            if state['chunked']:
                sock.sendall(b'0\r\n\r\n')
        except (ClientGone, BrokenPipeError, ConnectionResetError):
            return False
        except Exception:
            # The traceback goes to the log; the visitor gets a plain 500 without details.
            sys.stderr.write('holdfast wsgi loader: error in %s %s\n' % (method, environ['REQUEST_URI']))
            traceback.print_exc()
            sys.stderr.flush()
            if state['sent']:
                return False  # the response is cut short: closing tells the proxy it is incomplete
            sock.sendall(ERROR_500)
            return keep_alive
        finally:
            if result is not None and hasattr(result, 'close'):
                try:
                    result.close()
                except Exception:
                    traceback.print_exc()
                    sys.stderr.flush()
        if state['length'] is not None and state['body'] and state['written'] != state['length']:
            log('%s %s: Content-Length %d but %d bytes were sent; closing the connection'
                % (method, environ['REQUEST_URI'], state['length'], state['written']))
            return False
        return not state['close']


def listen(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o077)  # only holdfast's user may connect (the socket dir is 0700 as well)
    try:
        listener.bind(path)
    finally:
        os.umask(old)
    listener.listen(128)
    return listener


def main():
    if len(sys.argv) != 2 or not os.environ.get('HOLDFAST_APP_SOCKET'):
        log('usage: HOLDFAST_APP_SOCKET=PATH python wsgi_loader.py STARTUP_FILE')
        return 2
    socket_path = os.environ.pop('HOLDFAST_APP_SOCKET')
    startup_file = os.path.abspath(sys.argv[1])
    sys.argv = [startup_file]
    # The app dir comes first on the path, as under Passenger: `import myproject.settings` works.
    app_dir = os.getcwd()
    if app_dir not in sys.path:
        sys.path.insert(0, app_dir)
    try:
        application = load_application(startup_file)
    except BaseException:
        # Before listening: holdfast reports this exit, with this output, as a spawn error.
        log('could not load %s:' % startup_file)
        traceback.print_exc()
        sys.stderr.flush()
        return 1
    listener = listen(socket_path)
    try:
        Server(application, listener).serve_forever()
    except SystemExit:
        pass
    finally:
        listener.close()
        try:
            os.unlink(socket_path)
        except OSError:
            pass
    return 0


if __name__ == '__main__':
    sys.exit(main())
