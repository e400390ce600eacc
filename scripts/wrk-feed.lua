-- wrk script for Chirp's home feed: each request reads the first page of a random logged-in
-- user's feed. The tokens file (one bearer token per line) comes from `chirp-load tokens`.
--   wrk -t1 -c32 -d20s --latency -s scripts/wrk-feed.lua http://127.0.0.1:18080 -- TOKENS
local tokens = {}

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then tokens[#tokens + 1] = line end
  end
  math.randomseed(os.time())
end

function request()
  local t = tokens[math.random(#tokens)]
  return wrk.format("GET", "/feed?limit=20", { ["Authorization"] = "Bearer " .. t })
end
