-- wrk script: chat.lua's request with `temperature: 0` (cacheable) and a user message that differs on
-- every request: the run's nonce (the script's first argument), the thread and a counter. So a gateway's
-- response cache misses every time: it looks up, forwards, and stores each answer.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "chat.lua")

local chat_setup, chat_init = setup, init
local threads_made = 0
local nonce, sent = "", 0

function setup(thread)
   chat_setup(thread)
   threads_made = threads_made + 1
   thread:set("thread_id", threads_made)
end

function init(args)
   chat_init(args)
   nonce = (args[1] or tostring(os.time())) .. "-" .. tostring(thread_id or 0)
end

function request()
   sent = sent + 1
   return wrk.format(nil, nil, nil, string.format(
      '{"model":"bench","temperature":0,"messages":[{"role":"user","content":"Say ok %s-%d"}]}', nonce, sent))
end
