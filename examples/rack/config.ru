# The smallest Rack app: `holdfast start examples/rack` serves it with no configuration (a config.ru
# makes it a Rack app, as under Passenger).
run lambda { |env|
  [200, { 'content-type' => 'text/plain' }, ["hello from Rack, pid #{Process.pid}\n"]]
}
