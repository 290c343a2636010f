-- Admin listing, keyset-paginated by id.
SELECT id, email, role, display_name, salesman_id, client_id, is_active, created_at
  FROM users
 WHERE id > ${after}
 ORDER BY id
 LIMIT ${limit}
