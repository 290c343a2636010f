-- Login: an active user by e-mail, case-insensitive (users_email index on lower(email)).
SELECT id, email, password_hash, role, display_name, claims
  FROM ${schema:name}.users
 WHERE lower(email) = lower(${email}) AND is_active
