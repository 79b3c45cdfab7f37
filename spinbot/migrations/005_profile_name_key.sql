-- Profile names are compared by one key (spinbot/names.py: NFKC, case-folded), so "Zoë" typed composed or
-- decomposed, "Anna" and "Ａｎｎａ", are one name. The API writes name_key; existing rows get the closest
-- the database can compute, and a row whose key another row of its owner already has keeps its name but
-- gets its id appended to the key (both stay, neither is lost; rename one to make it findable by name).
ALTER TABLE profiles ADD COLUMN name_key text;
UPDATE profiles SET name_key = CASE WHEN current_setting('server_encoding') = 'UTF8'
                                    THEN lower(normalize(name, NFKC)) ELSE lower(name) END;
UPDATE profiles p SET name_key = p.name_key || '#' || p.id
  FROM (SELECT id, row_number() OVER (PARTITION BY owner, name_key ORDER BY created_at, id) AS n FROM profiles) d
 WHERE d.id = p.id AND d.n > 1;
ALTER TABLE profiles ALTER COLUMN name_key SET NOT NULL;
DROP INDEX profiles_owner_name;
CREATE UNIQUE INDEX profiles_owner_name_key ON profiles (owner, name_key);
