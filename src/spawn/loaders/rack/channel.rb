# holdfast's IPC channel as the Rack loader speaks it: Node's own framing (child_process with an
# 'ipc' stdio slot, NODE_CHANNEL_FD), so that holdfast's side is the ChildProcess#send it uses for
# the Node hook. One JSON object per line; a visitor connection travels as SCM_RIGHTS ancillary
# data on the line {"cmd":"NODE_HANDLE","type":"net.Socket","msg":{...}}, which the receiver must
# acknowledge with {"cmd":"NODE_HANDLE_ACK"} before Node sends it anything else.
#
# Also the framing between the preloader and the processes it forks (it relays holdfast's lines).

require 'json'
require 'socket'

module HoldfastRack
  class Channel
    READ_BYTES = 64 * 1024

    attr_reader :io

    def initialize(io)
      @io = io
      @io.close_on_exec = true # nothing the app execs inherits holdfast's channel
      @write_lock = Mutex.new
      @buffer = +''.b
      @fds = []
    end

    # The channel of a process holdfast started itself (Node sets NODE_CHANNEL_FD), or nil.
    def self.from_env
      fd = ENV.delete('NODE_CHANNEL_FD')
      ENV.delete('NODE_CHANNEL_SERIALIZATION_MODE')
      return nil unless fd&.match?(/\A\d+\z/)
      new(UNIXSocket.for_fd(fd.to_i))
    rescue SystemCallError, ArgumentError
      nil
    end

    # Safe from any thread; false when the other end is gone.
    def send_message(message, fd_io = nil)
      line = JSON.generate(message) << "\n"
      @write_lock.synchronize do
        if fd_io
          @io.sendmsg(line, 0, nil, Socket::AncillaryData.unix_rights(fd_io))
        else
          @io.write(line)
        end
      end
      true
    rescue IOError, SystemCallError
      false
    end

    # Reads what has arrived (call it when the channel is readable) and yields each message as
    # (message, io): io is the descriptor that came with a NODE_HANDLE line, already acknowledged.
    # Returns false once the other end has closed.
    def read_available
      data, _addr, _flags, *controls = @io.recvmsg_nonblock(READ_BYTES, 0, nil, scm_rights: true, exception: false)
      return true if data == :wait_readable
      return false if data.nil? || data.empty?
      controls.each { |c| @fds.concat(c.unix_rights || []) if c.cmsg_is?(:SOCKET, :RIGHTS) }
      @buffer << data
      while (newline = @buffer.index("\n"))
        line = @buffer.slice!(0, newline + 1).force_encoding(Encoding::UTF_8)
        message = parse(line)
        next unless message
        if message['cmd'] == 'NODE_HANDLE'
          # Node passes one descriptor at a time and waits for this before it sends anything more.
          send_message({ 'cmd' => 'NODE_HANDLE_ACK' })
          yield message['msg'], @fds.shift
        elsif !message['cmd'].is_a?(String) || !message['cmd'].start_with?('NODE_')
          yield message, nil
        end
      end
      true
    rescue IOError, SystemCallError
      false
    end

    def close
      @fds.each { |fd| fd.close rescue nil }
      @fds.clear
      @io.close unless @io.closed?
    end

    private

    def parse(line)
      message = JSON.parse(line)
      message.is_a?(Hash) ? message : nil
    rescue JSON::ParserError
      nil
    end
  end
end
