# One visitor connection holdfast handed to this process (the hand-off path): its request is read
# without blocking - head, then body (Content-Length or chunked, in memory up to MEMORY_BODY_BYTES,
# then in an unlinked temp file) - in the loader's select loop, so the app is called only once the
# whole request is here and a slow visitor holds no process. Its response is written without
# blocking too, up to OUTBOX_BYTES waiting for the visitor; past that the write waits.
#
# The limits are the ones holdfast's proxy applies to the same visitor: the headers timeout from the
# first byte to the end of the head (also for a connection that sends nothing at all), the request
# timeout to the end of the body, the keep-alive timeout between requests, max_request_body_size.

require 'stringio'
require 'tempfile'

module HoldfastRack
  # A visitor's request refused before the app sees it: the status and the one line it is told.
  class Refusal < StandardError
    attr_reader :status

    def initialize(status, text)
      super(text)
      @status = status
    end
  end

  Limits = Struct.new(:headers_timeout, :request_timeout, :keep_alive_timeout, :max_body, :body_dir, keyword_init: true)

  class Visitor
    OUTBOX_BYTES = 4 * 1024 * 1024
    # A request's head (and a chunked body's trailers) past this is refused with 431: Node's default
    # max header size, what holdfast's proxy and the Node hook refuse past.
    HEAD_BYTES = 16 * 1024
    # How long a write past OUTBOX_BYTES waits for a visitor that reads nothing.
    WRITE_TIMEOUT = 30
    BAD_REQUEST = 'Bad request.'
    EMPTY = ''.b.freeze

    attr_reader :id, :io, :peer, :env, :requests
    # :idle (between requests), :head, :body, :ready (whole request read), :serving, :gone
    attr_accessor :state, :keep_alive, :closing
    attr_reader :deadline

    # parse_head: head String -> [env, keep_alive] (raises Refusal or BadRequest).
    def initialize(id, io, limits, now, parse_head)
      @id = id
      @io = io
      @limits = limits
      @parse_head = parse_head
      @buffer = +''.b
      @outbox = +''.b
      @state = :idle
      @closing = false
      @requests = 0
      @peer = peer_address
      # Node's server never times out a connection that sends nothing: the proxy's rule, here too.
      @deadline = now + limits.headers_timeout
    end

    def at_rest?
      @state == :idle && @buffer.empty? && @outbox.empty?
    end

    def pending_output?
      !@outbox.empty?
    end

    # The bytes read and not yet part of a request (given to the proxy with the connection).
    def unread
      @buffer
    end

    # Reads what is there: :eof, :more, :ready or :proxy (from the block: the request starting in
    # the buffer is the proxy's to answer). Raises Refusal, or SystemCallError/IOError when the connection broke.
    def read_available(now, &route)
      if @state == :body && @buffer.empty?
        return read_body_directly(now) if !@chunked && @remaining.positive?
        return read_chunk_directly if @chunked && @chunk_state == :data && @chunk_left.positive?
      end
      chunk = @io.read_nonblock(HoldfastRack::READ_BYTES, exception: false)
      return :more if chunk == :wait_readable
      return :eof if chunk.nil?
      @buffer.empty? ? @buffer = chunk : @buffer << chunk # no copy when nothing is pending
      advance(now, &route)
    end

    # Parses as far as the buffer goes (also for pipelined bytes after a response).
    def advance(now, &route)
      loop do
        case @state
        when :idle
          return :more if @buffer.empty?
          return :proxy if route && route.call(@buffer) == :proxy
          @state = :head
          @started = now
          @deadline = now + @limits.headers_timeout
        when :head
          head_end = @buffer.index("\r\n\r\n")
          if head_end.nil? || head_end > HEAD_BYTES
            raise Refusal.new(431, 'Request header fields too large.') if @buffer.bytesize > HEAD_BYTES
            return :more
          end
          head = @buffer.byteslice(0, head_end)
          @buffer = @buffer.byteslice(head_end + 4, @buffer.bytesize)
          @env, @keep_alive = @parse_head.call(head)
          start_body
        when :body
          return :more unless read_body
          finish_body(now)
          return :ready
        else
          return :more
        end
      end
    end

    # The request has been answered: back at rest (the caller decides about pipelined bytes).
    def answered(now)
      @state = :idle
      @env = nil
      @body = nil
      @requests += 1
      @deadline = now + @limits.keep_alive_timeout
    end

    # Writes without blocking while the visitor keeps up; what it has not read yet waits in the
    # outbox (flushed by the select loop); past OUTBOX_BYTES the write waits for the visitor.
    def write(data)
      data = data.to_s
      return 0 if data.empty?
      size = data.bytesize
      if @outbox.empty?
        written = @io.write_nonblock(data, exception: false)
        written = 0 if written == :wait_writable
        return size if written == size
        data = data.byteslice(written, size)
      end
      @outbox << data
      flush_until(OUTBOX_BYTES) if @outbox.bytesize > OUTBOX_BYTES
      size
    end
    alias << write

    # Writes what the outbox holds as far as the socket takes it; true once empty.
    def flush
      until @outbox.empty?
        written = @io.write_nonblock(@outbox, exception: false)
        return false if written == :wait_writable
        @outbox = @outbox.byteslice(written, @outbox.bytesize)
      end
      true
    end

    # Waits until the outbox holds at most `limit` bytes (0: everything written).
    def flush_until(limit)
      while @outbox.bytesize > limit
        flush
        break if @outbox.bytesize <= limit
        raise Errno::ETIMEDOUT, 'visitor stopped reading its response' unless IO.select(nil, [@io], nil, WRITE_TIMEOUT)
      end
    end

    def close
      @state = :gone
      @io.close unless @io.closed?
    rescue IOError
      nil
    end

    private

    def peer_address
      address = @io.remote_address.ip_address
      address.start_with?('::ffff:') && address.include?('.') ? address[7..] : address
    rescue SystemCallError, SocketError, IOError
      ''
    end

    def start_body
      env = @env
      encoding = env.delete('HTTP_TRANSFER_ENCODING')
      length = env['CONTENT_LENGTH']
      @chunked = false
      @remaining = 0
      if encoding
        # Both framing headers, or a coding other than chunked last: how requests are smuggled.
        codings = encoding.downcase.split(',').map(&:strip)
        raise Refusal.new(400, BAD_REQUEST) if length || codings.last != 'chunked'
        # Another coding under chunked (gzip, chunked): the app would get the body still in it, with
        # nothing saying so. 501, as RFC 9112 section 6.1 asks and nginx (and holdfast's proxy) answers.
        raise Refusal.new(501, 'Transfer-Encoding not implemented: only chunked is.') if codings.length > 1
        @chunked = true
        @chunk_state = :size
        @received = 0
      elsif length
        raise Refusal.new(400, BAD_REQUEST) unless length.match?(/\A\d{1,18}\z/)
        @remaining = length.to_i
        over_limit!(@remaining)
      end
      expect = env['HTTP_EXPECT']
      if expect
        raise Refusal.new(417, 'Expectation failed.') unless expect.strip.casecmp?('100-continue')
        write("HTTP/1.1 100 Continue\r\n\r\n") if (@chunked || @remaining.positive?) && env['SERVER_PROTOCOL'] == 'HTTP/1.1'
      end
      # A chunked body starts in memory and moves to a file past MEMORY_BODY_BYTES.
      @body = !@chunked && @remaining > HoldfastRack::MEMORY_BODY_BYTES ? new_body_file : StringIO.new(+''.b)
      @state = :body
      @deadline = @started + @limits.request_timeout if @limits.request_timeout.positive?
    end

    # The rest of a Content-Length body, read through one reused buffer straight into the body
    # (a 100 MB upload allocates no 100 MB of strings for the GC to find).
    def read_body_directly(now)
      @scratch ||= String.new(capacity: HoldfastRack::READ_BYTES, encoding: Encoding::BINARY)
      chunk = @io.read_nonblock([@remaining, HoldfastRack::READ_BYTES].min, @scratch, exception: false)
      return :more if chunk == :wait_readable
      return :eof if chunk.nil?
      @body.write(chunk)
      @remaining -= chunk.bytesize
      return :more if @remaining.positive?
      finish_body(now)
      :ready
    end

    # The same for the data of a chunk (then the parser goes on with what follows it).
    def read_chunk_directly
      @scratch ||= String.new(capacity: HoldfastRack::READ_BYTES, encoding: Encoding::BINARY)
      chunk = @io.read_nonblock([@chunk_left, HoldfastRack::READ_BYTES].min, @scratch, exception: false)
      return :more if chunk == :wait_readable
      return :eof if chunk.nil?
      @body.write(chunk)
      @chunk_left -= chunk.bytesize
      @chunk_state = :data_end if @chunk_left.zero?
      :more
    end

    def over_limit!(size)
      max = @limits.max_body
      raise Refusal.new(413, 'Request body too large.') if max.positive? && size > max
    end

    # Moves what the buffer has into the body; true once the body is complete.
    def read_body
      return read_chunked if @chunked
      take = [@remaining, @buffer.bytesize].min
      if take.positive?
        @body.write(@buffer.byteslice(0, take))
        @buffer = @buffer.byteslice(take, @buffer.bytesize)
        @remaining -= take
      end
      @remaining.zero?
    end

    def read_chunked
      loop do
        case @chunk_state
        when :size
          line_end = @buffer.index("\r\n")
          if line_end.nil?
            raise Refusal.new(400, BAD_REQUEST) if @buffer.bytesize > 4096
            return false
          end
          size_text = @buffer.byteslice(0, line_end).split(';', 2).first.to_s.strip
          raise Refusal.new(400, BAD_REQUEST) unless size_text.match?(/\A\h{1,15}\z/)
          @buffer = @buffer.byteslice(line_end + 2, @buffer.bytesize)
          @chunk_left = size_text.to_i(16)
          if @chunk_left.zero?
            @chunk_state = :trailers
          else
            @received += @chunk_left
            over_limit!(@received)
            @body = spill(@body) if @body.is_a?(StringIO) && @received > HoldfastRack::MEMORY_BODY_BYTES
            @chunk_state = :data
          end
        when :data
          take = [@chunk_left, @buffer.bytesize].min
          return false if take.zero?
          @body.write(@buffer.byteslice(0, take))
          @buffer = @buffer.byteslice(take, @buffer.bytesize)
          @chunk_left -= take
          @chunk_state = :data_end if @chunk_left.zero?
        when :data_end
          return false if @buffer.bytesize < 2
          raise Refusal.new(400, BAD_REQUEST) unless @buffer.start_with?("\r\n")
          @buffer = @buffer.byteslice(2, @buffer.bytesize)
          @chunk_state = :size
        when :trailers # trailer fields, up to an empty line; dropped as the proxy does
          line_end = @buffer.index("\r\n")
          if line_end.nil?
            raise Refusal.new(431, 'Request header fields too large.') if @buffer.bytesize > HEAD_BYTES
            return false
          end
          @buffer = @buffer.byteslice(line_end + 2, @buffer.bytesize)
          return true if line_end.zero?
        end
      end
    end

    def finish_body(_now)
      body = @body
      @env['CONTENT_LENGTH'] = body.size.to_s if @chunked
      body.rewind
      @env['rack.input'] = body
      @body = nil
      @state = :ready
      @deadline = nil
    end

    def new_body_file
      dir = @limits.body_dir
      file = dir ? Tempfile.new('holdfast-body', dir) : Tempfile.new('holdfast-body')
      file.binmode
      file.unlink rescue nil # nothing left on disk whatever happens to the process
      file
    end

    def spill(string_io)
      file = new_body_file
      file.write(string_io.string)
      file
    end
  end
end
