-- wrk script: chat.lua's request with `temperature: 0` (cacheable) and the same body every time, so after
-- the first answer a gateway's response cache answers every request.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "chat.lua")

wrk.body = '{"model":"bench","temperature":0,"messages":[{"role":"user","content":"Say ok"}]}'
