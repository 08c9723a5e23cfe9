# The hand-off path in the Rack loader (docs/performance.md): holdfast sends this process whole
# visitor connections over its IPC channel (channel.rb), as it does to Node apps, and the loader's
# select loop serves them itself, one request at a time, next to the proxy's connections. It does
# what the proxy would have done: the request read whole before the app runs (visitor.rb), the
# visitor-side timeouts and limits, X-Forwarded-For/Proto/Host and the request id, the readiness
# path; files under static_files_dir are left to holdfast: the connection goes back to it with the
# bytes read so far, and holdfast's proxy answers.
#
# A channel thread reads holdfast's messages and reports the process's load; while the app is busy
# with one request for longer than BUSY_GIVE_BACK seconds, it gives back the connections at rest
# whose next request is waiting (holdfast routes them to a free process or queues them, and may
# scale up: Passenger's model, where no request waits behind another one in a process), says
# "busy", and says "free" when the call is over.
#
#   loader -> holdfast: {type:'ready', handoff:true}  {type:'load', elu, peak, served, stats}
#                       {type:'closed', id}  {type:'returned', id[, busy:true | proxy:true, data:<base64>]}
#                       {type:'free'}  {type:'stats', peak, served, stats}  {type:'limit', served}
#   holdfast -> loader: {type:'holdfast:conn', id} + descriptor  {type:'holdfast:drain'}
#                       {type:'holdfast:shed', keep}  {type:'holdfast:continue'}  {type:'holdfast:flush'}

require 'securerandom'

module HoldfastRack
  # Whether holdfast's proxy answers a GET or HEAD itself (proxy/static-files.ts lookup(): a file
  # under the root, or a path it refuses). Errs towards yes: the proxy hands the rest to the app anyway.
  class StaticRoot
    RECHECK_SECONDS = 1.0
    REFUSED = %r{%(2e|5c|00)}i.freeze

    def initialize(root)
      @root = root
      @checked_at = nil
      @real = nil
    end

    def proxy_answers?(method, target, now)
      return false unless method == 'GET' || method == 'HEAD'
      return false unless target.start_with?('/')
      root = real_root(now)
      return false unless root
      raw = target.split(/[?#]/, 2).first.to_s
      return true if raw.include?('\\')
      return false if raw.match?(/%(?!\h\h)/) # not a valid percent-encoding: cannot name a file
      decoded = raw.gsub(/%\h\h/) { |m| m[1, 2].hex.chr }.force_encoding(Encoding::UTF_8)
      return false unless decoded.valid_encoding?
      return true if decoded.include?("\0") || decoded.include?('\\') || decoded.match?(REFUSED)
      return true if decoded.split('/').any? { |s| s == '..' || s == '.' }
      file = root + decoded
      File.file?(file) || (File.directory?(file) && File.file?(File.join(file, 'index.html')))
    rescue SystemCallError, ArgumentError
      false
    end

    private

    def real_root(now)
      return @real if @checked_at && now - @checked_at < RECHECK_SECONDS
      @checked_at = now
      real = File.realpath(@root)
      @real = File.directory?(real) ? real : nil
    rescue SystemCallError
      @real = nil
    end
  end

  # Mixed into Server: the visitors' side of its select loop.
  module VisitorServing
    LOAD_INTERVAL = 0.25
    TICK = 0.05
    BUSY_GIVE_BACK = 0.1
    REQUEST_ID_PATTERN = %r{\A[A-Za-z0-9._:@/+=-]{1,128}\z}.freeze
    TEXT_HEADERS = "content-type: text/plain; charset=utf-8\r\n"

    private

    def mono
      Process.clock_gettime(Process::CLOCK_MONOTONIC)
    end

    # handoff: { channel:, settings: (HOLDFAST_HANDOFF's JSON), announce: (say ready), exit_on_eof: }
    def setup_handoff(handoff)
      @handoff = handoff
      @channel = handoff[:channel]
      s = handoff[:settings]
      @limits = Limits.new(
        headers_timeout: s.fetch('headersTimeoutMs', 60_000) / 1000.0,
        request_timeout: s.fetch('requestTimeoutMs', 0).to_i / 1000.0,
        keep_alive_timeout: s.fetch('keepAliveTimeoutMs', 5000) / 1000.0,
        max_body: s.fetch('maxRequestBodyBytes', 0).to_i,
        body_dir: s['bufferDir']
      )
      @id_header = s.fetch('requestIdHeader', 'x-request-id').downcase
      @id_env_key = "HTTP_#{@id_header.upcase.tr('-', '_')}"
      @readiness_path = s['readinessPath']
      @max_requests = s.fetch('maxRequests', 0).to_i
      @buckets = s.fetch('buckets', [])
      statics = s['staticFiles']
      @static = statics && statics['root'] ? StaticRoot.new(statics['root']) : nil
      @lock = Mutex.new
      @visitors = {} # IO => Visitor
      @ready = [] # visitors whose whole request is read, in order
      @draining = false
      @holding = false # at max_requests until holdfast says drain or continue
      @shed_to = nil
      @served = 0
      @active = 0
      @peak = 0
      @limit_reported = false
      reset_stats
      @busy_seconds = 0.0
      @busy_mark = nil
      @call_started = nil
      @gave_busy = false
      @parse_visitor_head = method(:visitor_env)
      @route = method(:route_request)
    end

    def start_handoff
      @channel_thread = Thread.new { channel_loop }
      @channel_thread.report_on_exception = false
      @channel.send_message({ 'type' => 'ready', 'handoff' => true }) if @handoff[:announce]
    end

    def wake
      @wake_w.write_nonblock('.', exception: false)
    rescue IOError
      nil
    end

    # ---- the channel thread ----

    def channel_loop
      last_load = mono
      loop do
        readable, = IO.select([@channel.io], nil, nil, TICK)
        if readable && !@channel.read_available { |message, io| channel_message(message, io) }
          return channel_gone
        end
        now = mono
        give_back_waiting if @call_started && now - @call_started > BUSY_GIVE_BACK
        next unless now - last_load >= LOAD_INTERVAL
        send_load(now - last_load, now)
        last_load = now
      end
    rescue IOError, SystemCallError
      channel_gone
    end

    def channel_gone
      return @channel_dead = true unless @handoff[:exit_on_eof]
      # holdfast is gone (even after a SIGKILL): nobody sends visitors here any more.
      File.unlink(ENV['HOLDFAST_APP_SOCKET']) rescue nil
      exit!(1)
    end

    def channel_message(message, io)
      case message['type']
      when 'holdfast:conn' then adopt(message['id'], io)
      when 'holdfast:drain'
        @lock.synchronize do
          @draining = true
          @holding = false
          @visitors.values.each { |v| give_back(v) if v.at_rest? }
        end
        wake
      when 'holdfast:continue'
        @lock.synchronize { @holding = false }
        wake
      when 'holdfast:shed'
        @lock.synchronize do
          @shed_to = message['keep'].to_i
          shed
        end
      when 'holdfast:flush'
        @channel.send_message(@lock.synchronize { counts('stats') })
      else
        io&.close
      end
    end

    def adopt(id, io)
      unless id.is_a?(Integer) && io
        io&.close
        @channel.send_message({ 'type' => 'returned', 'id' => id }) if id.is_a?(Integer)
        return
      end
      socket = Socket.for_fd(io.fileno)
      io.autoclose = false
      socket.sync = true
      visitor = Visitor.new(id, socket, @limits, mono, @parse_visitor_head)
      @lock.synchronize do
        @visitors[socket] = visitor
        # It crossed our drain or limit on the way: untouched, it goes elsewhere.
        give_back(visitor) if @draining || @holding
      end
      wake
    end

    # Under @lock. This process's copy is closed; holdfast still holds the connection.
    def give_back(visitor, extra = nil)
      @visitors.delete(visitor.io)
      visitor.close
      message = { 'type' => 'returned', 'id' => visitor.id }
      message.merge!(extra) if extra
      @channel.send_message(message)
    end

    # Under @lock: connections at rest go back until only @shed_to are left.
    def shed
      return unless @shed_to
      @visitors.values.each do |v|
        break if @visitors.size <= @shed_to
        give_back(v) if v.at_rest?
      end
      @shed_to = nil if @visitors.size <= @shed_to
    end

    # While a request runs long: connections at rest whose next request has arrived go back.
    def give_back_waiting
      @lock.synchronize do
        return unless @call_started
        waiting = @visitors.values.select(&:at_rest?)
        return if waiting.empty?
        readable, = IO.select(waiting.map(&:io), nil, nil, 0)
        return unless readable
        readable.each { |io| give_back(@visitors[io], { 'busy' => true }) if @visitors[io] }
        @gave_busy = true
      end
    rescue IOError
      nil
    end

    def reset_stats
      @status_counts = [0, 0, 0, 0, 0]
      @bucket_counts = Array.new(@buckets.size + 1, 0)
      @duration_sum = 0.0
      @counted = 0
    end

    # Under @lock.
    def counts(type)
      message = { 'type' => type, 'peak' => @peak, 'served' => @served }
      if @counted.positive?
        message['stats'] = { 'status' => @status_counts, 'buckets' => @bucket_counts, 'sum' => @duration_sum, 'count' => @counted }
        reset_stats
      end
      message
    end

    def send_load(interval, now)
      message = @lock.synchronize do
        busy = @busy_seconds
        @busy_seconds = 0.0
        if @busy_mark
          busy += now - @busy_mark
          @busy_mark = now
        end
        m = counts('load')
        m['elu'] = [(busy / interval).round(3), 1.0].min
        @peak = @active
        m
      end
      @channel.send_message(message)
    end

    # ---- the select loop's side (main thread) ----

    def visitor_ios
      reads = []
      writes = []
      deadline = nil
      @lock.synchronize do
        @visitors.each_value do |v|
          writes << v.io if v.pending_output?
          next if v.closing || v.state == :ready || v.state == :serving || (@holding && v.at_rest?)
          reads << v.io
          deadline = v.deadline if v.deadline && (deadline.nil? || v.deadline < deadline)
        end
      end
      [reads, writes, deadline && [deadline - mono, 0].max]
    end

    def visitor?(io)
      @lock.synchronize { @visitors.key?(io) }
    end

    def visitor_readable(io)
      now = mono
      visitor = nil
      outcome = @lock.synchronize do
        visitor = @visitors[io]
        next nil unless visitor
        visitor.read_available(now, &@route)
      end
      after_read(visitor, outcome)
    rescue Refusal => e
      refuse(visitor, e)
    rescue BadRequest
      refuse(visitor, Refusal.new(400, Visitor::BAD_REQUEST))
    rescue IOError, SystemCallError
      drop_visitor(visitor)
    end

    def after_read(visitor, outcome)
      case outcome
      when :eof then drop_visitor(visitor)
      when :ready then @ready << visitor
      when :proxy
        @lock.synchronize { give_back(visitor, { 'proxy' => true, 'data' => [visitor.unread].pack('m0') }) if @visitors.key?(visitor.io) }
      end
    end

    # The route block of Visitor#advance: a request holdfast answers itself goes back to it.
    def route_request(buffer)
      return nil unless @static
      line_end = buffer.index("\r\n")
      return nil unless line_end
      method, target, = buffer.byteslice(0, line_end).split(' ', 3)
      target && @static.proxy_answers?(method, target, mono) ? :proxy : nil
    end

    def visitors_writable(ios)
      ios.each do |io|
        visitor = @lock.synchronize { @visitors[io] }
        next unless visitor
        begin
          next unless visitor.flush
          if visitor.closing then drop_visitor(visitor)
          else at_rest_now(visitor)
          end
        rescue IOError, SystemCallError
          drop_visitor(visitor)
        end
      end
    end

    # Deadlines passed: a connection at rest is closed, one in the middle of a request told 408.
    def visitors_expire
      now = mono
      expired = @lock.synchronize { @visitors.values.select { |v| v.deadline && v.deadline <= now && !v.closing } }
      expired.each do |v|
        if v.state == :idle && v.unread.empty? then drop_visitor(v)
        else refuse(v, Refusal.new(408, 'Request timeout.'))
        end
      end
    end

    def refuse(visitor, refusal)
      return unless visitor
      text = "#{refusal.message}\n"
      status_text = HoldfastRack::STATUS_TEXT[refusal.status] || 'Error'
      visitor.closing = true
      visitor.write("HTTP/1.1 #{refusal.status} #{status_text}\r\n#{TEXT_HEADERS}content-length: #{text.bytesize}\r\nconnection: close\r\n\r\n#{text}")
      drop_visitor(visitor) unless visitor.pending_output?
    rescue IOError, SystemCallError
      drop_visitor(visitor)
    end

    def drop_visitor(visitor)
      return unless visitor
      @lock.synchronize do
        next unless @visitors.delete(visitor.io)
        visitor.close
        @channel.send_message({ 'type' => 'closed', 'id' => visitor.id })
      end
    end

    def serve_visitors
      until @stopping
        visitor = @ready.shift
        break unless visitor
        serve_visitor(visitor) if visitor.state == :ready
      end
    end

    def serve_visitor(visitor)
      env = visitor.env
      keep_alive = visitor.keep_alive
      if @readiness_path && env['REQUEST_URI'] == @readiness_path
        return answered(visitor, keep_alive && !@draining, readiness(visitor, keep_alive && !@draining))
      end
      request_id = forward(visitor, env)
      started = mono
      limit = false
      @lock.synchronize do
        visitor.state = :serving
        keep_alive &&= !@draining # a request that starts during the drain is the connection's last
        @served += 1
        @active += 1
        @peak = @active if @active > @peak
        if @max_requests.positive? && @served >= @max_requests && !@limit_reported && !@draining
          @limit_reported = limit = @holding = true
        end
        @call_started = @busy_mark = started
      end
      @channel.send_message({ 'type' => 'limit', 'served' => @served }) if limit
      detached = false
      detach = lambda do
        detached = true
        visitor.flush_until(0)
        drop_visitor(visitor) # holdfast lets go of its copy; the app has the socket now
      end
      kept, status = respond(visitor, visitor.io, env, keep_alive, detach, request_id)
      call_over(started, status)
      answered(visitor, kept, detached ? :detached : :answered)
    rescue IOError, SystemCallError
      call_over(started, 499) if started
      drop_visitor(visitor)
    ensure
      input = env && env['rack.input']
      input.close! if input.is_a?(Tempfile)
    end

    def readiness(visitor, keep_alive)
      text = @draining ? "stopping\n" : "ready\n"
      visitor.write("HTTP/1.1 #{@draining ? '503 Service Unavailable' : '200 OK'}\r\n#{TEXT_HEADERS}content-length: #{text.bytesize}\r\n" \
                    "#{keep_alive ? '' : "connection: close\r\n"}\r\n#{text}")
      :answered
    end

    def call_over(started, status)
      finished = mono
      gave = false
      @lock.synchronize do
        @busy_seconds += finished - @busy_mark if @busy_mark
        @busy_mark = @call_started = nil
        gave = @gave_busy
        @gave_busy = false
        @active -= 1
        @status_counts[status >= 100 && status < 600 ? status / 100 - 1 : 4] += 1
        seconds = finished - started
        @bucket_counts[@buckets.index { |b| seconds <= b } || @buckets.size] += 1
        @duration_sum += seconds
        @counted += 1
      end
      @channel.send_message({ 'type' => 'free' }) if gave
    end

    # After a response: closed, or at rest again (pipelined bytes read on, or given back).
    def answered(visitor, keep_alive, how)
      return if how == :detached || visitor.state == :gone
      unless keep_alive
        visitor.closing = true
        drop_visitor(visitor) unless visitor.pending_output?
        return
      end
      visitor.answered(mono)
      at_rest_now(visitor)
    end

    def at_rest_now(visitor)
      outcome = @lock.synchronize do
        next nil unless @visitors.key?(visitor.io)
        if visitor.at_rest?
          if @draining
            give_back(visitor)
          elsif @shed_to
            shed
          end
          nil
        elsif visitor.state == :idle && !visitor.unread.empty? && !@holding
          visitor.advance(mono, &@route) # a pipelined request
        end
      end
      after_read(visitor, outcome)
    rescue Refusal => e
      refuse(visitor, e)
    rescue BadRequest
      refuse(visitor, Refusal.new(400, Visitor::BAD_REQUEST))
    end

    # What the proxy adds (proxy/headers.ts): the visitor's address last in X-Forwarded-For, the
    # scheme, the host, and the request id (the visitor's own when sane); REMOTE_ADDR is the visitor.
    def forward(visitor, env)
      peer = visitor.peer
      chain = env['HTTP_X_FORWARDED_FOR']
      unless peer.empty?
        env['HTTP_X_FORWARDED_FOR'] = chain ? "#{chain}, #{peer}" : peer
        env['REMOTE_ADDR'] = peer
      end
      env['HTTP_X_FORWARDED_PROTO'] ||= 'http'
      env['HTTP_X_FORWARDED_HOST'] ||= env['HTTP_HOST'] if env['HTTP_HOST']
      incoming = env[@id_env_key]
      env[@id_env_key] = incoming.is_a?(String) && incoming.match?(REQUEST_ID_PATTERN) ? incoming : SecureRandom.uuid
    end

    # The head of a visitor's request as Rack sees it; refuses what holdfast's proxy (Node's
    # parser) would refuse.
    def visitor_env(head)
      env, keep_alive = build_env(head, strict: true)
      raise Refusal.new(400, Visitor::BAD_REQUEST) if env['SERVER_PROTOCOL'] == 'HTTP/1.1' && !env['HTTP_HOST']
      [env, keep_alive]
    end
  end

  # Smart spawning on the hand-off path: the processes a preloader forks are its children, not
  # holdfast's, so the preloader relays: holdfast's lines name the process ({"pid":N} in the message),
  # the preloader passes them and their descriptors on over a socket pair per process, and adds the
  # pid to what the processes say.
  class Relay
    def initialize(channel)
      @channel = channel
      @lock = Mutex.new
      @processes = {} # pid => Channel
      @wake_r, @wake_w = IO.pipe
    end

    # Before the fork: the two ends of the new process's channel.
    def self.pair
      UNIXSocket.pair
    end

    def add(pid, io)
      @lock.synchronize { @processes[pid] = Channel.new(io) }
      @wake_w.write_nonblock('.', exception: false)
    end

    def start
      Thread.new { run }.report_on_exception = false
    end

    # In a forked process: the preloader's ends of its siblings' channels are not its to hold (an
    # end held there would keep a sibling from seeing the preloader go).
    def forget
      @processes.each_value { |c| c.io.close rescue nil }
      @processes.clear
      [@wake_r, @wake_w].each { |io| io.close rescue nil }
    end

    private

    def run
      loop do
        channels = @lock.synchronize { @processes.dup }
        readable, = IO.select([@channel.io, @wake_r, *channels.values.map(&:io)])
        readable.each do |io|
          if io.equal?(@channel.io)
            exit!(0) unless @channel.read_available { |message, fd| from_holdfast(message, fd) }
          elsif io.equal?(@wake_r)
            @wake_r.read_nonblock(64, exception: false)
          else
            pid, child = channels.find { |_, c| c.io.equal?(io) }
            next unless child
            next if child.read_available { |message, _| @channel.send_message(message.merge('pid' => pid)) }
            @lock.synchronize { @processes.delete(pid) }
            child.close
          end
        end
      end
    rescue IOError, SystemCallError
      exit!(0)
    end

    def from_holdfast(message, fd)
      pid = message['pid']
      child = @lock.synchronize { @processes[pid] }
      if fd
        sent = child&.send_message({ 'cmd' => 'NODE_HANDLE', 'type' => 'net.Socket', 'msg' => message }, fd)
        fd.close
        @channel.send_message({ 'type' => 'returned', 'id' => message['id'], 'pid' => pid }) unless sent
      else
        child&.send_message(message)
      end
    end
  end
end
