-- A new login; a duplicate e-mail (any case) violates users_email and is reported as 409.
INSERT INTO users (email, password_hash, role, display_name, salesman_id, client_id)
VALUES (lower(${email}), ${passwordHash}, ${role}, ${displayName}, ${salesmanId}, ${clientId})
RETURNING id, email, role, display_name, salesman_id, client_id, is_active, created_at
