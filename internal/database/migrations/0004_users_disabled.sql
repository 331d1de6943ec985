-- A disabled user keeps their data but can neither sign in nor use a token
-- they already hold (auth.Service.Authenticate checks every request).
ALTER TABLE users ADD COLUMN disabled_at timestamptz;
