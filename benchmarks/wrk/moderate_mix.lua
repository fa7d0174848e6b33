-- wrk script for benchmarks/bench_load.py: a realistic mix of POST /v1/moderate bodies.
--
--   comment   55 %  {"id", "surface": "comment", "text"}
--   message   15 %  a direct message
--   playlist  15 %  surface playlist_description, two text parts: title and description
--   other      5 %  a profile bio or a podcast episode's text
--   batch     10 %  {"items": [...]} of 2-20 items drawn from the four kinds above
--
-- About one text in ten is toxic. Every item is new (the engine is idempotent: a repeated
-- item would measure a store lookup). bench_load.py passes, in the environment:
--   REFEREE_BENCH_KEY      the API key (Bearer)
--   REFEREE_BENCH_RUN      a run id, so items of the warm-up and the measured phase differ
--   REFEREE_BENCH_BENIGN,  texts, one per line (bench_load.py's BENIGN and TOXIC lists:
--   REFEREE_BENCH_TOXIC    one source for both load generators)
--   REFEREE_BENCH_IDS      a folder: each thread writes the decision ids it was answered
--                          there, for the check that every answered decision can be read back
-- and reads the name=value lines done() prints.

local threads = {}
local tid_next = 0

function setup(thread)
  tid_next = tid_next + 1
  thread:set("tid", tid_next)
  table.insert(threads, thread)
end

local function lines(text)
  local out = {}
  for line in (text or ""):gmatch("[^\n]+") do table.insert(out, line) end
  assert(#out > 0, "bench_load.py passes REFEREE_BENCH_BENIGN and REFEREE_BENCH_TOXIC")
  return out
end

local function quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
end

local benign, toxic, headers, run, ids
local seq = 0
sent = {comment = 0, message = 0, playlist = 0, other = 0, batch = 0}
items_sent, ok, ok_items = 0, 0, 0

function init(args)
  math.randomseed(tid * 7919 + os.time())
  benign = lines(os.getenv("REFEREE_BENCH_BENIGN"))
  toxic = lines(os.getenv("REFEREE_BENCH_TOXIC"))
  run = os.getenv("REFEREE_BENCH_RUN") or "run"
  headers = {["Content-Type"] = "application/json",
             ["Authorization"] = "Bearer " .. (os.getenv("REFEREE_BENCH_KEY") or "")}
  local folder = os.getenv("REFEREE_BENCH_IDS")
  if folder then
    ids = assert(io.open(folder .. "/ids-" .. run .. "-" .. tid .. ".txt", "w"))
    ids:setvbuf("line")  -- wrk has no per-thread teardown: nothing may wait in a buffer at exit
  end
end

local function text()
  seq = seq + 1
  local base = math.random() < 0.1 and toxic[math.random(#toxic)] or benign[math.random(#benign)]
  return string.format("%s (%d %.6f)", base, seq, math.random())
end

local function item(kind)
  local id = quote(string.format("load-%s-%d-%d", run, tid, seq + 1))
  items_sent = items_sent + 1
  if kind == "comment" or kind == "message" then
    return '{"id":' .. id .. ',"surface":"' .. kind .. '","text":' .. quote(text()) .. '}'
  elseif kind == "playlist" then
    return '{"id":' .. id .. ',"surface":"playlist_description","parts":['
      .. '{"kind":"text","id":"title","role":"title","text":' .. quote(text()) .. '},'
      .. '{"kind":"text","id":"description","role":"description","text":' .. quote(text() .. ". " .. text()) .. '}]}'
  end
  local surface = math.random() < 0.5 and "profile_bio" or "podcast_episode"
  return '{"id":' .. id .. ',"surface":"' .. surface .. '","text":' .. quote(text()) .. '}'
end

local function single_kind()
  local r = math.random(90)  -- the four single kinds, in the proportions above (55:15:15:5)
  if r <= 55 then return "comment" elseif r <= 70 then return "message" elseif r <= 85 then return "playlist" end
  return "other"
end

function request()
  local body
  if math.random(100) <= 10 then
    sent.batch = sent.batch + 1
    local parts = {}
    for k = 1, math.random(2, 20) do parts[k] = item(single_kind()) end
    body = '{"items":[' .. table.concat(parts, ",") .. ']}'
  else
    local kind = single_kind()
    sent[kind] = sent[kind] + 1
    body = item(kind)
  end
  return wrk.format("POST", "/v1/moderate", headers, body)
end

function response(status, _, body)
  if status ~= 200 then return end
  ok = ok + 1
  for decision_id in body:gmatch('"decision_id"%s*:%s*"([^"]+)"') do
    ok_items = ok_items + 1
    if ids then ids:write(decision_id, "\n") end
  end
end

function done(summary, latency, _)
  for _, q in ipairs({50, 95, 99}) do io.write(string.format("wrk_p%d_us=%d\n", q, latency:percentile(q))) end
  io.write(string.format("wrk_max_us=%d\nwrk_mean_us=%d\nwrk_requests=%d\nwrk_non2xx=%d\n", latency.max,
                         latency.mean, summary.requests, summary.errors.status))
  io.write(string.format("wrk_socket_errors=%d\n", summary.errors.connect + summary.errors.read
                         + summary.errors.write + summary.errors.timeout))
  local totals = {comment = 0, message = 0, playlist = 0, other = 0, batch = 0, items = 0, ok = 0, ok_items = 0}
  for _, t in ipairs(threads) do
    local s = t:get("sent")
    for k, _ in pairs(sent) do totals[k] = totals[k] + s[k] end
    totals.items = totals.items + t:get("items_sent")
    totals.ok = totals.ok + t:get("ok")
    totals.ok_items = totals.ok_items + t:get("ok_items")
  end
  for _, k in ipairs({"comment", "message", "playlist", "other", "batch", "items", "ok", "ok_items"}) do
    io.write(string.format("wrk_sent_%s=%d\n", k, totals[k]))
  end
end
