-- Where an 8-byte request fingerprint sits in `seen` (one fingerprint per
-- applied action, in order): the 0-based action index, or nil.
local function seen_at(seen, fp)
  local from = 1
  while true do
    local i = string.find(seen, fp, from, true)
    if not i then
      return nil
    end
    if (i - 1) % 8 == 0 then
      return (i - 1) / 8
    end
    from = i + 1
  end
end
