-- A new login; a duplicate e-mail (any case) violates users_email and is reported as 409.
-- `claims` was checked against the role's declared claims by the caller.
INSERT INTO ${schema:name}.users (email, password_hash, role, display_name, claims)
VALUES (lower(${email}), ${passwordHash}, ${role}, ${displayName}, ${claims:json})
RETURNING id, email, role, display_name AS "displayName", claims, is_active AS active, created_at AS "createdAt"
