# holdfast's Rack loader: boots a config.ru and serves it to holdfast's proxy over a private Unix
# socket, one request at a time (Passenger's model for Ruby). Standard library plus the rack gem
# only; it runs inside the app, so it defines nothing at the top level but HoldfastRack.
#
#   ruby loader.rb            HOLDFAST_APP_SOCKET=<path> HOLDFAST_RACKUP=<config.ru>
#
# Direct mode (the default): load the app, listen on HOLDFAST_APP_SOCKET (holdfast takes "the socket
# accepts" as ready), serve until SIGTERM.
# Preloader mode (HOLDFAST_PRELOADER=1, smart spawning): load the app once, then listen on
# HOLDFAST_APP_SOCKET as a control socket. holdfast connects once and sends lines:
#   hello\n                 -> (first: tells this connection from holdfast's readiness probe)
#   spawn <socket-path> <output-path>\n
#                           -> the preloader binds <socket-path>, forks a process that serves it
#                              (copy-on-write: the app is already loaded) and answers "ok <pid>\n"
#                              or "error <message>\n"; the process connects its stdout and stderr
#                              to <output-path> (first byte 1 or 2), so its output carries its pid
# and reads "exit <pid> <status> <signal>\n" whenever one of those processes ends (the preloader is
# their parent, so only it can see their exit status). When holdfast closes the control connection
# the preloader exits; its processes are holdfast's to stop.
#
# The protocol to holdfast's proxy is plain HTTP/1.1 with keep-alive: it is what the proxy already
# speaks to every app, and a lean server costs less than a second protocol would. A boot error
# (syntax error, missing gem, bad database.yml, an exception in an initializer) is printed as the
# exception class, message and backtrace, and the process exits 1: holdfast makes a spawn error of
# it with that output.

require 'socket'
require 'stringio'
require 'tempfile'
require_relative 'channel'
require_relative 'visitor'
require_relative 'handoff'

module HoldfastRack
  # Bodies up to this size stay in memory; larger ones go to a temp file (rack.input is rewindable).
  MEMORY_BODY_BYTES = 1024 * 1024
  MAX_HEADER_BYTES = 64 * 1024
  READ_BYTES = 64 * 1024
  STATUS_TEXT = {
    100 => 'Continue', 101 => 'Switching Protocols', 200 => 'OK', 201 => 'Created', 202 => 'Accepted',
    204 => 'No Content', 206 => 'Partial Content', 301 => 'Moved Permanently', 302 => 'Found',
    303 => 'See Other', 304 => 'Not Modified', 307 => 'Temporary Redirect', 308 => 'Permanent Redirect',
    400 => 'Bad Request', 401 => 'Unauthorized', 403 => 'Forbidden', 404 => 'Not Found',
    405 => 'Method Not Allowed', 408 => 'Request Timeout', 409 => 'Conflict', 410 => 'Gone',
    413 => 'Payload Too Large', 417 => 'Expectation Failed', 422 => 'Unprocessable Entity',
    429 => 'Too Many Requests', 431 => 'Request Header Fields Too Large', 500 => 'Internal Server Error',
    501 => 'Not Implemented', 502 => 'Bad Gateway', 503 => 'Service Unavailable', 504 => 'Gateway Timeout'
  }.freeze
  CRLF = "\r\n"
  # Headers that the proxy turns into Rack's own keys (CGI names without HTTP_).
  CGI_NAMES = { 'CONTENT_TYPE' => true, 'CONTENT_LENGTH' => true }.freeze
  # RFC 9110 token characters: what a header name and a method may be made of (visitors' requests).
  TOKEN = /\A[!#$%&'*+\-.^_`|~0-9A-Za-z]+\z/.freeze
  # A control character in a header value the app sets (a CR or LF from something it echoed: a
  # redirect target, a file name) would end the header early and start one of the visitor's choosing.
  CONTROL = /[\x00-\x08\x0A-\x1F\x7F]/.freeze

  BOOT_ERROR_MARKER = 'holdfast-rack: boot error: '

  class BadRequest < StandardError; end

  def self.log(message)
    $stderr.write("holdfast-rack: #{message}\n")
  end

  # Everything Passenger prints of a boot error: class, message, backtrace.
  # The last line, with BOOT_ERROR_MARKER, is what holdfast puts in the spawn error's message.
  def self.report_boot_error(error)
    $stderr.write("Error while loading the app (#{error.class}): #{error.message}\n")
    (error.backtrace || []).first(30).each { |line| $stderr.write("  #{line}\n") }
    first_line = error.message.to_s.lines.first.to_s.strip
    $stderr.write("#{BOOT_ERROR_MARKER}#{error.class}: #{first_line}\n")
    $stderr.flush
  end

  # Connections opened while the app loaded (a Rails initializer that queried the database) must not
  # be shared by the forked processes: close them once in the preloader; each process opens its own.
  def self.before_fork
    return unless defined?(ActiveRecord::Base) && ActiveRecord::Base.respond_to?(:connection_handler)
    handler = ActiveRecord::Base.connection_handler
    pools = handler.respond_to?(:all_connection_pools) ? handler.all_connection_pools : handler.connection_pool_list
    pools.each(&:disconnect!)
  rescue StandardError => e
    log("could not close the database connections before forking: #{e.class}: #{e.message}")
  end

  # A forked process's own stdout and stderr (see Preloader), instead of the preloader's pipes.
  def self.own_output(path)
    [[$stdout, '1'], [$stderr, '2']].each do |io, tag|
      socket = UNIXSocket.new(path)
      socket.write(tag)
      io.reopen(socket)
      io.sync = true
      socket.close
    end
  rescue SystemCallError, IOError => e
    log("output stays with the preloader: #{e.class}: #{e.message}")
  end

  def self.load_app(rackup)
    app_root = File.dirname(rackup)
    Dir.chdir(app_root)
    # As Passenger does: an app with a Gemfile gets its bundle, before anything else is required.
    if ENV['BUNDLE_GEMFILE'] || File.exist?(File.join(app_root, 'Gemfile'))
      ENV['BUNDLE_GEMFILE'] ||= File.join(app_root, 'Gemfile')
      require 'bundler/setup'
    end
    require 'rack'
    built = Rack::Builder.parse_file(rackup)
    built.is_a?(Array) ? built.first : built # Rack 2 returns [app, options], Rack 3 the app
  end

  # One process serving requests: a select loop over the listening socket and the proxy's keep-alive
  # connections (the proxy may hold several to one process; serving them one at a time keeps a
  # single-threaded app single-threaded).
  class Server
    include VisitorServing

    # handoff: nil (the proxy's connections only), or what VisitorServing#setup_handoff takes.
    def initialize(app, listener, handoff: nil)
      @app = app
      @listener = listener
      @clients = {} # IO => pending bytes (a String)
      @stopping = false
      @wake_r, @wake_w = IO.pipe
      @rack3 = Rack.release.to_i >= 3
      @base_env = {
        'SCRIPT_NAME' => '',
        'SERVER_SOFTWARE' => 'holdfast',
        'rack.version' => Rack::VERSION,
        'rack.errors' => $stderr,
        'rack.multithread' => false,
        'rack.multiprocess' => true,
        'rack.run_once' => false,
        'rack.hijack?' => true
      }.freeze
      @handoff = nil
      setup_handoff(handoff) if handoff
    end

    def stop
      @stopping = true
      @wake_w.write_nonblock('.', exception: false)
    end

    def run
      %w[TERM INT].each { |sig| trap(sig) { stop } }
      trap('QUIT') { stop }
      start_handoff if @handoff
      until @stopping
        reads = [@listener, @wake_r, *@clients.keys]
        writes = timeout = nil
        if @handoff
          visitor_reads, writes, timeout = visitor_ios
          reads.concat(visitor_reads)
        end
        begin
          readable, writable = IO.select(reads, writes, nil, timeout)
        rescue IOError, Errno::EBADF
          next # a visitor's connection given back (closed) by the channel thread meanwhile
        end
        visitors_writable(writable) if writable && !writable.empty?
        (readable || []).each do |io|
          break if @stopping
          if io.equal?(@listener)
            accept
          elsif io.equal?(@wake_r)
            @wake_r.read_nonblock(4096, exception: false)
          elsif @clients.key?(io)
            serve_client(io)
          elsif @handoff
            visitor_readable(io)
          end
        end
        next unless @handoff
        visitors_expire
        serve_visitors
      end
    ensure
      @clients.each_key { |io| io.close unless io.closed? }
      @listener.close unless @listener.closed?
    end

    private

    def accept
      loop do
        io = @listener.accept_nonblock(exception: false)
        break if io == :wait_readable || io.nil?
        @clients[io] = +''
      end
    end

    def drop(io)
      @clients.delete(io)
      io.close unless io.closed?
    end

    # Reads what is there; serves every complete request in the buffer, one at a time.
    def serve_client(io)
      buffer = @clients[io]
      chunk = io.read_nonblock(READ_BYTES, exception: false)
      return if chunk == :wait_readable
      return drop(io) if chunk.nil? # the proxy closed its keep-alive connection
      buffer << chunk
      until @stopping
        head_end = buffer.index("\r\n\r\n")
        if head_end.nil?
          raise BadRequest, 'request head too large' if buffer.bytesize > MAX_HEADER_BYTES
          return
        end
        keep = handle_request(io, buffer, head_end)
        return unless @clients.key?(io) # hijacked
        return drop(io) unless keep
        return if buffer.empty?
      end
    rescue BadRequest => e
      io.write("HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n") rescue nil
      HoldfastRack.log("bad request from the proxy: #{e.message}")
      drop(io)
    rescue Errno::EPIPE, Errno::ECONNRESET, IOError
      drop(io)
    end

    # Parses one request of the proxy's out of buffer (consuming it), calls the app and writes the
    # response. Returns whether the connection stays open.
    def handle_request(io, buffer, head_end)
      head = buffer.byteslice(0, head_end)
      buffer.replace(buffer.byteslice(head_end + 4, buffer.bytesize))
      env, keep_alive = build_env(head)
      env['rack.input'] = read_body(io, buffer, env)
      proxied_call(true)
      begin
        keep, = respond(io, io, env, keep_alive, -> { @clients.delete(io) }, nil)
      ensure
        proxied_call(false)
      end
      keep
    ensure
      input = env && env['rack.input']
      input.close! if input.is_a?(Tempfile)
    end

    # A proxied request on a process that also takes visitors counts as busy time (load reports,
    # and the visitors waiting behind it go back to holdfast).
    def proxied_call(starting)
      return unless @handoff
      now = mono
      gave = false
      @lock.synchronize do
        if starting
          @call_started = @busy_mark = now
        else
          @busy_seconds += now - @busy_mark if @busy_mark
          @busy_mark = @call_started = nil
          gave = @gave_busy
          @gave_busy = false
        end
      end
      @channel.send_message({ 'type' => 'free' }) if gave
    end

    # The Rack env of a request head, and whether the connection may stay open. strict: a
    # visitor's request (the hand-off path), checked as Node's parser would; the proxy's are sane.
    def build_env(head, strict: false)
      lines = head.split(CRLF)
      lines.shift while strict && lines.first == '' # empty lines before the request line are allowed
      # Single spaces, as Node's parser wants: split(' ') would take a tab for one too.
      method, target, version = lines.shift.to_s.split(/ /, 3)
      raise BadRequest, 'malformed request line' if version.nil? || !version.start_with?('HTTP/1.')
      if strict && !(method.match?(TOKEN) && (version == 'HTTP/1.1' || version == 'HTTP/1.0') && !target.include?(' ') &&
                     (target.start_with?('/') || target == '*' || target.match?(%r{\Ahttps?://}i)))
        raise BadRequest, 'malformed request line'
      end

      env = @base_env.dup
      env['REQUEST_METHOD'] = method
      resource = target
      if !target.start_with?('/') && (authority = target[%r{\A[A-Za-z][A-Za-z0-9+.\-]*://[^/?#]*}])
        # Absolute-form (RFC 9112 section 3.2.2): the app routes on its path and query, as under puma
        # and the WSGI loader; REQUEST_URI keeps the target as sent.
        resource = target[authority.length..]
        resource = "/#{resource}" unless resource.start_with?('/')
      end
      path, query = resource.split('?', 2)
      env['PATH_INFO'] = path
      env['QUERY_STRING'] = query || ''
      env['REQUEST_URI'] = target
      env['SERVER_PROTOCOL'] = version
      env['HTTP_VERSION'] = version
      lines.each do |line|
        colon = line.index(':')
        raise BadRequest, 'malformed header line' if colon.nil?
        raw_name = line[0, colon]
        value = line[colon + 1..].strip
        raise BadRequest, 'malformed header line' if strict && (!raw_name.match?(TOKEN) || value.include?("\n") || value.include?("\0"))
        # A name with "_" lands on the env key of its hyphenated twin (X_Forwarded_For on
        # HTTP_X_FORWARDED_FOR, beside or instead of the one holdfast sets): left out, as nginx (so
        # Passenger), gunicorn and holdfast's WSGI loader do.
        next if raw_name.include?('_')
        name = raw_name.upcase.tr('-', '_')
        key = CGI_NAMES[name] ? name : "HTTP_#{name}"
        # A second Host is not joined to the first (SERVER_NAME "a, b"): the first one counts, as in
        # Node's parser and holdfast's proxy.
        next if key == 'HTTP_HOST' && env.key?(key)
        env[key] = env.key?(key) ? "#{env[key]}, #{value}" : value
      end
      host = env['HTTP_HOST'] || 'localhost'
      server_name, server_port = host.start_with?('[') ? host.split(/(?<=\])(?::)/, 2) : host.split(':', 2)
      scheme = (env['HTTP_X_FORWARDED_PROTO'] || 'http').split(',').first.to_s.strip
      scheme = 'http' unless scheme == 'https'
      env['SERVER_NAME'] = server_name
      env['SERVER_PORT'] = server_port || (scheme == 'https' ? '443' : '80')
      env['rack.url_scheme'] = scheme
      env['HTTPS'] = 'on' if scheme == 'https'
      # The proxy appends the visitor's address last to X-Forwarded-For (on the hand-off path
      # VisitorServing#forward sets REMOTE_ADDR itself).
      forwarded = env['HTTP_X_FORWARDED_FOR']
      env['REMOTE_ADDR'] = forwarded ? forwarded.split(',').last.strip : '127.0.0.1'

      keep_alive = if version == 'HTTP/1.0'
                     env['HTTP_CONNECTION'].to_s.downcase.include?('keep-alive')
                   else
                     !env['HTTP_CONNECTION'].to_s.downcase.include?('close')
                   end
      [env, keep_alive]
    end

    # Calls the app and writes its response to out (the proxy's socket, or a Visitor); raw is the
    # socket itself, for rack.hijack, and detach takes the connection out of the select loop.
    # Returns [whether the connection stays open, the status].
    def respond(out, raw, env, keep_alive, detach, request_id)
      hijacked = false
      env['rack.hijack'] = lambda do
        hijacked = true
        detach.call
        raw
      end
      env['rack.hijack_io'] = raw unless @rack3

      begin
        status, headers, body = @app.call(env)
      rescue StandardError, ScriptError => e
        # As Passenger does: the visitor gets a 500, the log the exception; the process serves on.
        HoldfastRack.log("#{env['REQUEST_METHOD']} #{env['REQUEST_URI']}: #{e.class}: #{e.message}")
        (e.backtrace || []).first(20).each { |line| $stderr.write("  #{line}\n") }
        return [false, 500] if hijacked
        status, headers, body = 500, { 'content-type' => 'text/plain' }, ["Internal Server Error\n"]
      end
      return [false, status.to_i] if hijacked # the app owns the socket now (full hijack)
      code = status.to_i
      unless code.between?(100, 999)
        # Rack's SPEC: an Integer of at least 100 (a String that starts with one is taken, as puma
        # takes it: only the number is written). A 500 and the log, as for an exception.
        HoldfastRack.log("#{env['REQUEST_METHOD']} #{env['REQUEST_URI']}: invalid status #{status.inspect} (Rack wants an Integer 100-999); answered 500")
        body.close if body.respond_to?(:close)
        code, headers, body = 500, { 'content-type' => 'text/plain' }, ["Internal Server Error\n"]
      end
      [write_response(out, raw, env, code, headers, body, keep_alive, detach, request_id), code]
    end

    def read_body(io, buffer, env)
      if env['HTTP_TRANSFER_ENCODING'].to_s.downcase.include?('chunked')
        env.delete('HTTP_TRANSFER_ENCODING')
        input = read_chunked(io, buffer)
        env['CONTENT_LENGTH'] = input.size.to_s
        input.rewind
        return input
      end
      length = env['CONTENT_LENGTH']
      return StringIO.new(+''.b) if length.nil? || length == '0'
      raise BadRequest, 'bad content-length' unless length.match?(/\A\d+\z/)
      remaining = length.to_i
      input = remaining > MEMORY_BODY_BYTES ? new_tempfile : StringIO.new(+''.b)
      take = [remaining, buffer.bytesize].min
      input.write(buffer.byteslice(0, take))
      buffer.replace(buffer.byteslice(take, buffer.bytesize))
      remaining -= take
      while remaining.positive?
        chunk = io.readpartial([remaining, READ_BYTES].min)
        input.write(chunk)
        remaining -= chunk.bytesize
      end
      input.rewind
      input
    end

    def read_chunked(io, buffer)
      input = StringIO.new(+''.b)
      loop do
        line_end = fill_until(io, buffer) { buffer.index(CRLF) }
        size = buffer.byteslice(0, line_end).split(';', 2).first.to_i(16)
        buffer.replace(buffer.byteslice(line_end + 2, buffer.bytesize))
        if size.zero?
          # trailers, up to the empty line
          trailer_end = fill_until(io, buffer) { buffer.start_with?(CRLF) ? 0 : buffer.index("\r\n\r\n")&.+(2) }
          buffer.replace(buffer.byteslice(trailer_end + 2, buffer.bytesize))
          return input
        end
        fill_until(io, buffer) { buffer.bytesize >= size + 2 ? size : nil }
        input = spill(input) if input.is_a?(StringIO) && input.size + size > MEMORY_BODY_BYTES
        input.write(buffer.byteslice(0, size))
        buffer.replace(buffer.byteslice(size + 2, buffer.bytesize))
      end
    end

    def fill_until(io, buffer)
      loop do
        found = yield
        return found if found
        raise BadRequest, 'chunk header too large' if buffer.bytesize > MAX_HEADER_BYTES && buffer.index(CRLF).nil?
        buffer << io.readpartial(READ_BYTES)
      end
    end

    def new_tempfile
      file = Tempfile.new('holdfast-body')
      file.binmode
      file.unlink rescue nil # nothing left on disk whatever happens to the process
      file
    end

    def spill(string_io)
      file = new_tempfile
      file.write(string_io.string)
      file
    end

    def write_response(io, raw, env, status, headers, body, keep_alive, detach, request_id)
      head = +"HTTP/1.1 #{status} #{STATUS_TEXT[status] || 'Unknown'}\r\n"
      length = nil
      chunked = false
      hijack = nil
      headers.each do |name, value|
        if name == 'rack.hijack'
          hijack = value
          next
        end
        # Rack 2 joins the values of a repeated header with "\n"; Rack 3 gives an Array.
        values = value.is_a?(Array) ? value.map(&:to_s) : (value = value.to_s).include?("\n") ? value.split("\n") : nil
        valid_name = name.is_a?(String) && name.match?(TOKEN)
        if !valid_name || (values ? values.any? { |v| v.match?(CONTROL) } : value.match?(CONTROL))
          # Left out, as puma does, and said: the rest of the answer is still the app's.
          HoldfastRack.log("#{env['REQUEST_METHOD']} #{env['REQUEST_URI']}: header #{name.inspect} left out: #{valid_name ? 'a control character in its value' : 'not a valid header name'}")
          next
        end
        key = name.downcase
        case key
        when 'content-length' then length = value.to_s
        when 'transfer-encoding' then chunked = value.to_s.downcase.include?('chunked')
        when 'connection'
          keep_alive = false if value.to_s.downcase.include?('close')
          next
        when @id_header
          request_id = nil # the app's own
        end
        if values
          values.each { |v| head << name << ': ' << v << CRLF }
        else
          head << name << ': ' << value << CRLF
        end
      end
      head << @id_header << ': ' << request_id << CRLF if request_id
      no_body = env['REQUEST_METHOD'] == 'HEAD' || status < 200 || status == 204 || status == 304

      if hijack # partial hijack: we write the head, the app the rest (the end of the body is the end of the connection)
        head << "connection: close\r\n" << CRLF
        io.write(head)
        detach.call
        hijack.call(raw)
        return false
      end

      if no_body
        head << "connection: close\r\n" unless keep_alive
        io.write(head << CRLF)
        return keep_alive
      end

      if length.nil? && !chunked && body.respond_to?(:to_ary)
        parts = body.to_ary
        length = parts.sum(&:bytesize).to_s
        head << 'content-length: ' << length << CRLF
        head << "connection: close\r\n" unless keep_alive
        head << CRLF
        parts.each { |part| head << part }
        io.write(head)
        return keep_alive
      end

      encode = length.nil? && !chunked
      head << "transfer-encoding: chunked\r\n" if encode
      head << "connection: close\r\n" unless keep_alive
      io.write(head << CRLF)
      written = 0
      if body.respond_to?(:each)
        body.each do |part|
          next if part.empty?
          written += part.bytesize
          io.write(encode ? "#{part.bytesize.to_s(16)}\r\n#{part}\r\n" : part)
        end
      elsif body.respond_to?(:call) # Rack 3 streaming body
        stream = Stream.new(io, encode)
        body.call(stream)
        written = stream.written
      end
      io.write("0\r\n\r\n") if encode
      # The app's own Content-Length was wrong (a length in characters, not bytes): the reader cannot
      # tell where this response ends, so the connection ends with it (too short, the reader would
      # wait for ever for the rest).
      if length && !chunked && written != length.to_i
        HoldfastRack.log("#{env['REQUEST_METHOD']} #{env['REQUEST_URI']}: Content-Length #{length} but #{written} bytes were sent; closing the connection")
        return false
      end
      keep_alive
    ensure
      body.close if body.respond_to?(:close)
    end
  end

  # The stream a Rack 3 streaming body writes to.
  class Stream
    # Body bytes written so far.
    attr_reader :written

    def initialize(io, chunked)
      @io = io
      @chunked = chunked
      @written = 0
    end

    def write(data)
      data = data.to_s
      return 0 if data.empty?
      @io.write(@chunked ? "#{data.bytesize.to_s(16)}\r\n#{data}\r\n" : data)
      @written += data.bytesize
      data.bytesize
    end
    alias << write

    def flush; self; end
    def read(*) = nil
    def close_read; end
    def close_write; end
    def close; end
    def closed? = false
  end

  # Smart spawning: the app is loaded once here; each process is a fork of this one.
  class Preloader
    # handoff: nil, or { channel:, settings: } (holdfast's IPC channel, relayed to the processes).
    def initialize(app, control_path, handoff: nil)
      @app = app
      @handoff = handoff
      @relay = handoff && Relay.new(handoff[:channel])
      @control = UNIXServer.new(control_path)
      @children = {}
      @lock = Mutex.new
      @forked = Queue.new # wakes the reaper when it has someone to wait for
    end

    def run
      trap('TERM') { exit!(0) }
      trap('INT', 'IGNORE')
      # Garbage the boot left behind is collected once here rather than in every process, and the
      # heap compacted, so that the forked processes share as many pages as possible.
      HoldfastRack.before_fork
      GC.start
      GC.compact if GC.respond_to?(:compact)
      # holdfast's readiness probe connects and hangs up; its control connection says hello first.
      conn = nil
      until conn
        candidate = @control.accept
        if candidate.gets == "hello\n"
          conn = candidate
        else
          candidate.close
        end
      end
      @control.close
      @conn = conn
      Thread.new { reap }
      @relay&.start
      while (line = conn.gets)
        command, argument = line.chomp.split(' ', 2)
        if command == 'spawn' && argument
          socket_path, output_path = argument.split(' ', 2)
          reply(spawn_process(socket_path, output_path))
        else
          reply("error unknown command #{command.inspect}")
        end
      end
      exit!(0) # holdfast closed the control connection
    end

    private

    def reply(line)
      @lock.synchronize { @conn.write("#{line}\n") }
    end

    def spawn_process(socket_path, output_path)
      listener = UNIXServer.new(socket_path)
      ours, theirs = @relay ? Relay.pair : nil
      pid = @lock.synchronize do
        fork do
          # Its own process group, so holdfast can stop it (and what it forks) alone.
          Process.setpgid(0, 0)
          @conn.close
          if @handoff
            @handoff[:channel].close
            @relay.forget
            ours.close
          end
          HoldfastRack.own_output(output_path) if output_path
          # What a process started directly would see.
          ENV.delete('HOLDFAST_PRELOADER')
          ENV['HOLDFAST_APP_SOCKET'] = socket_path
          %w[TERM INT QUIT].each { |sig| trap(sig, 'DEFAULT') }
          handoff = theirs && { channel: Channel.new(theirs), settings: @handoff[:settings], announce: false, exit_on_eof: false }
          Server.new(@app, listener, handoff: handoff).run
          exit!(0)
        end.tap { |child| @children[child] = true }
      end
      if ours
        theirs.close
        @relay.add(pid, ours)
      end
      # Also here, so the group exists before holdfast hears the pid (the child may not have run yet).
      begin
        Process.setpgid(pid, pid)
      rescue Errno::EACCES, Errno::ESRCH
        nil # the child got there first, or is already gone (its exit is reported)
      end
      @forked << pid
      listener.close
      "ok #{pid}"
    rescue SystemCallError, IOError => e
      listener&.close
      [ours, theirs].each { |io| io&.close rescue nil }
      "error #{e.class}: #{e.message}"
    end

    def reap
      loop do
        @forked.pop while @lock.synchronize { @children.empty? } || !@forked.empty?
        pid, status = Process.wait2(-1)
        @lock.synchronize do
          @children.delete(pid)
          @conn.write("exit #{pid} #{status.exitstatus.inspect} #{status.termsig.inspect}\n")
        end
      rescue Errno::ECHILD
        next
      rescue IOError, SystemCallError
        exit!(0)
      end
    end
  end

  def self.main
    socket_path = ENV.fetch('HOLDFAST_APP_SOCKET')
    rackup = File.expand_path(ENV.fetch('HOLDFAST_RACKUP'))
    $stdout.sync = true
    $stderr.sync = true
    begin
      app = load_app(rackup)
    rescue Exception => e # rubocop:disable Lint/RescueException -- every boot error is a spawn error
      report_boot_error(e)
      exit!(1)
    end
    handoff = handoff_from_env
    if ENV['HOLDFAST_PRELOADER'] == '1'
      Preloader.new(app, socket_path, handoff: handoff).run
    else
      handoff&.merge!(announce: true, exit_on_eof: true)
      Server.new(app, UNIXServer.new(socket_path), handoff: handoff).run
    end
  end

  # The hand-off path is on when holdfast sent its settings and started us with its channel.
  def self.handoff_from_env
    raw = ENV.delete('HOLDFAST_HANDOFF')
    channel = Channel.from_env
    return nil unless raw && channel
    require 'json'
    { channel: channel, settings: JSON.parse(raw) }
  rescue JSON::ParserError
    log('HOLDFAST_HANDOFF is not JSON: connections are not handed off')
    nil
  end
end

HoldfastRack.main if $PROGRAM_NAME == __FILE__
