# The Rack hello of `npm run bench:rack` (the same as examples/rack): served by holdfast, puma and
# Passenger side by side.
run lambda { |env|
  [200, { 'content-type' => 'text/plain' }, ["hello from Rack, pid #{Process.pid}\n"]]
}
