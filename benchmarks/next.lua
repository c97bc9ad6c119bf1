-- wrk script for bench_service.py: POST /next/<user> with user and track varied per request.
-- Argument: the number of catalog tracks (track ids 0..n-1).
local tracks = 50000
local counter = 0

function init(args)
  if args[1] then tracks = tonumber(args[1]) end
  counter = math.random(1, 1000000)
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

function request()
  counter = counter + 1
  local user = counter % 10000
  local track = (counter * 7919) % tracks
  local time = (counter % 100) / 100
  return wrk.format(nil, "/next/" .. user, nil,
                    '{"track": ' .. track .. ', "time": ' .. time .. '}')
end
