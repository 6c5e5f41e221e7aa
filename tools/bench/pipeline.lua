-- wrk script for HTTP pipelining: every write carries `depth` requests back to back
-- (the first script argument, default 16), and wrk counts each response.
--   wrk -t1 -c16 -d5s -s tools/bench/pipeline.lua http://127.0.0.1:8080/plaintext -- 16

init = function(args)
  local depth = tonumber(args[1]) or 16
  local batch = {}
  for i = 1, depth do
    batch[i] = wrk.format()
  end
  pipelined = table.concat(batch)
end

request = function()
  return pipelined
end
