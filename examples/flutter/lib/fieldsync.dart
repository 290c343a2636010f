/// A fieldsync client for Flutter: login, pull into SQLite, an offline upload queue and the
/// live push channel. SQLite sits behind [LocalDb]/[LocalTx] (implement them with sqflite).
/// Base URL: `http://10.0.2.2:3000` from an Android emulator, `http://localhost:3000` from
/// an iOS simulator.
library;

import 'dart:async';
import 'dart:convert';
import 'dart:developer' as developer;
import 'dart:math';

import 'package:http/http.dart' as http;
// ignore: library_prefixes
import 'package:socket_io_client/socket_io_client.dart' as IO;
import 'package:uuid/uuid.dart';

// #docregion api
/// An error answer (application/problem+json): branch on [code], show `title`/`detail`.
final class ApiProblem implements Exception {
  ApiProblem(this.status, this.body, this.retryAfter);
  final int status;
  final Map<String, dynamic> body; // {type, title, status, code, detail?, errors?, requestId}
  final Duration? retryAfter; // Retry-After of a 429 or 503: wait, then try again
  String get code => body['code'] as String? ?? 'http-$status';

  @override
  String toString() => 'ApiProblem($status $code: ${body['detail'] ?? body['title']}, ${body['requestId']})';
}

/// package:http with the server's base URL and the bearer token.
final class Api {
  Api(String base, {http.Client? client}) : base = Uri.parse(base), _http = client ?? http.Client();
  final Uri base;
  final http.Client _http;
  String? token;
  static const timeout = Duration(seconds: 30);

  /// Paths, and the relative URLs answers carry (snapshot pages, thumbs).
  Uri resolve(String pathOrUrl) => base.resolve(pathOrUrl);

  Future<Map<String, dynamic>> postJson(String path, Object body, {bool auth = true}) =>
      _send('POST', path, body: body, auth: auth);
  Future<Map<String, dynamic>> getJson(String url, {bool auth = true}) => _send('GET', url, auth: auth);

  Future<Map<String, dynamic>> _send(String method, String path, {Object? body, required bool auth}) async {
    final req = http.Request(method, resolve(path))..headers['accept'] = 'application/json';
    final bearer = token;
    if (auth && bearer != null) req.headers['authorization'] = 'Bearer $bearer';
    if (body != null) {
      req.headers['content-type'] = 'application/json';
      req.bodyBytes = utf8.encode(jsonEncode(body));
    }
    // dart:io asks for gzip and decodes it by itself
    final res = await _http.send(req).then(http.Response.fromStream).timeout(timeout);
    if (res.statusCode < 200 || res.statusCode > 299) throw _problem(res);
    return _json(res) ?? <String, dynamic>{};
  }

  static ApiProblem _problem(http.Response res) {
    final seconds = int.tryParse(res.headers['retry-after'] ?? '');
    return ApiProblem(res.statusCode, _json(res) ?? {}, seconds == null ? null : Duration(seconds: seconds));
  }

  static Map<String, dynamic>? _json(http.Response res) {
    try {
      final value = jsonDecode(utf8.decode(res.bodyBytes));
      return value is Map<String, dynamic> ? value : null;
    } on FormatException {
      return null; // not JSON (a proxy's error page)
    }
  }
}
// #enddocregion api

// #docregion login
/// The user: `user` of POST /v1/auth/login and of GET /v1/auth/me.
final class User {
  User.fromJson(Map<String, dynamic> j)
      : id = '${j['id']}', // a string
        role = j['role'] as String,
        name = j['name'] as String?,
        claims = j['claims'] as Map<String, dynamic>? ?? const {};
  final String id, role;
  final String? name;
  final Map<String, dynamic> claims; // the role's, e.g. {'salesmanId': 1}: they scope what he sees
}

typedef Session = ({String token, DateTime expiresAt, User user});

/// Logs in and sets [Api.token] (keep it in secure storage). When it expires (401
/// token-expired) log in again; orders taken offline stay queued meanwhile. Problems:
/// 401 invalid-credentials, 429 rate-limited (Retry-After), 403 a login refused.
Future<Session> login(Api api, String email, String password) async {
  final body = await api.postJson('/v1/auth/login', {'email': email, 'password': password}, auth: false);
  api.token = body['token'] as String;
  return (
    token: api.token!,
    expiresAt: DateTime.fromMillisecondsSinceEpoch((body['expiresAt'] as num).toInt()),
    user: User.fromJson(body['user'] as Map<String, dynamic>),
  );
}

Future<User> me(Api api) async =>
    User.fromJson((await api.getJson('/v1/auth/me'))['user'] as Map<String, dynamic>);
// #enddocregion login

/// (collection, id, v) of one local row: `id` as sent (int or String), `v` its version.
typedef LocalRow = ({String collection, Object id, int v});
typedef Rejection = ({String code, String message, Object? details});
/// `price`: the decimal string the salesman saw ("4.50"); the server prices the order.
typedef OrderLine = ({int productId, int qty, String? note, String? price});

/// The device's SQLite side (e.g. sqflite). Synced rows are keyed by (collection, bucket,
/// id); keep `id` as sent (int stays int, string stays string) and `v` (the third column).
abstract interface class LocalDb {
  Future<T> transaction<T>(Future<T> Function(LocalTx tx) action); // one SQLite transaction
  Future<String?> cursor();
  Future<List<LocalRow>> rowVersions(String bucket); // every local row of the bucket
  // The upload queue: a table of its own, which LocalTx.dropAll never touches.
  Future<void> enqueue(Mutation mutation);
  Future<List<Mutation>> queued({required int limit}); // the oldest first
  Future<void> dequeue(List<String> ids);
}

/// The writes of one transaction: await every call.
abstract interface class LocalTx {
  Future<void> dropBucket(String bucket);
  Future<void> dropAll(); // every synced row (not the upload queue)
  Future<void> deleteRow(String collection, String bucket, Object id);
  /// Insert or replace (collection, bucket, row[1]); [cols] names the values: b, id, v, ...
  Future<void> upsertRow(String collection, String bucket, List<String> cols, List<Object?> row);
  Future<void> setCursor(String? cursor);
}

/// One offline write, stored as [toJson] and sent as it is until the server answers it.
final class Mutation {
  const Mutation({required this.id, required this.type, required this.payload, required this.createdAt});
  final String id; // a UUID v4 made once: a retry never makes a new one
  final String type; // e.g. 'order.create'
  final Map<String, dynamic> payload;
  final int createdAt; // epoch ms
  Map<String, Object?> toJson() => {'id': id, 'type': type, 'payload': payload, 'createdAt': createdAt};
}

// #docregion checksum
/// FNV-1a 32 over the UTF-8 bytes of [s].
int fnv1a32(String s) {
  var h = 0x811c9dc5;
  for (final b in utf8.encode(s)) {
    h ^= b;
    h = (h * 0x01000193) & 0xffffffff;
  }
  return h;
}

/// A bucket's checksum: the sum of fnv1a32("<collection>:<id>:<v>") over its local rows, mod 2^32.
int bucketChecksum(Iterable<LocalRow> rows) =>
    rows.fold(0, (sum, r) => (sum + fnv1a32('${r.collection}:${r.id}:${r.v}')) & 0xffffffff);

/// The buckets whose local rows do not add up to a pull answer's `checksums` (sent for
/// caught-up buckets only). [verified] remembers matches, so a bucket is summed again only
/// when its checksum changes. A damaged bucket: drop its rows and pull from zero.
Future<List<String>> damagedBuckets(
    LocalDb db, Map<String, dynamic> checksums, Map<String, int> verified) async {
  final damaged = <String>[];
  for (final entry in checksums.entries) {
    final expected = (entry.value as num).toInt();
    if (verified[entry.key] == expected) continue;
    if (bucketChecksum(await db.rowVersions(entry.key)) == expected) {
      verified[entry.key] = expected;
    } else {
      damaged.add(entry.key);
    }
  }
  return damaged;
}
// #enddocregion checksum

/// Keeps one device in sync: pulls, uploads the queue, listens to the push channel.
final class FieldSync {
  FieldSync(this.api, this.db,
      {required this.deviceId, required this.relogin, this.app = 'salesman', this.limit = 1000,
      this.onRejected, this.prefetchThumb, this.onHint, this.onError = _logError});
  final Api api;
  final LocalDb db;
  final String deviceId; // stable per installation
  final Future<Session> Function() relogin; // stored credentials, or the login screen
  final String app;
  final int limit;
  final void Function(Mutation mutation, Rejection rejection)? onRejected;
  final void Function(String collection, Object id, Uri thumb)? prefetchThumb; // e.g. into the image cache
  final void Function(String event, Map<String, dynamic> data)? onHint; // UI hints: pull is the truth
  final void Function(Object error, StackTrace stack) onError;

  static final _uuid = Uuid();
  final _random = Random();
  final _verified = <String, int>{};
  late final _pull = _Serial(() => _orLater(_pullAll, sync));
  late final _upload = _Serial(() => _orLater(_uploadAll, upload));
  Future<void>? _loggingIn;
  IO.Socket? _socket;
  Timer? _pokeTimer;
  bool _reconnecting = false;

  /// Pulls until caught up; a call while a pull runs asks for one more pull after it.
  Future<void> sync() => _pull();
  /// Uploads the queue; a call while an upload runs asks for one more after it.
  Future<void> upload() => _upload();

  void close() {
    _socket?.dispose();
    _pokeTimer?.cancel();
  }

  /// One re-login at a time, shared by pull, push and the push channel.
  Future<void> _relogin() =>
      _loggingIn ??= relogin().then((s) => api.token = s.token).whenComplete(() => _loggingIn = null);

  /// Runs [call]; a 401 (token-expired, token-invalid) logs in again once and retries.
  Future<T> _authed<T>(Future<T> Function() call) async {
    try {
      return await call();
    } on ApiProblem catch (p) {
      if (p.status != 401) rethrow;
      await _relogin();
      return call();
    }
  }

  // #docregion pull-loop
  /// Pulls until `hasMore` is false. Each answer, with its snapshot pages, is applied in ONE
  /// SQLite transaction that also stores the new cursor, so a crash just replays it.
  Future<void> _pullAll() async {
    var snapshotRetries = 0;
    while (true) {
      final answer = await _pullOnce();
      if (answer == null) continue; // the cursor was reset: pull again
      // Snapshot pages are fetched before the transaction (signed URLs: no bearer token).
      final pages = <Map<String, dynamic>>[];
      try {
        for (final snapshot in answer['snapshots'] as List? ?? const []) {
          for (final url in _strings((snapshot as Map)['pages'])) {
            pages.add(await api.getJson(url, auth: false));
          }
        }
      } on ApiProblem catch (p) {
        // 410 snapshot-gone or 403 (URL expired): discard the answer, pull again from the stored cursor
        if ((p.status != 410 && p.status != 403) || ++snapshotRetries > 3) rethrow;
        continue;
      }
      final buckets = answer['buckets'] as Map<String, dynamic>;
      final current = _strings(buckets['current']); // `b` in rows and deletes indexes this list
      final removed = _strings(buckets['removed']);
      await db.transaction((tx) async {
        for (final bucket in removed) await tx.dropBucket(bucket);
        for (final page in pages) await _applySnapshotPage(tx, page);
        final changes = answer['changes'] as Map<String, dynamic>? ?? const {};
        for (final entry in changes.entries) {
          final c = entry.value as Map<String, dynamic>;
          final cols = _strings(c['cols']);
          for (final d in c['deleted'] as List? ?? const []) {
            final pair = d as List; // [b, id]
            await tx.deleteRow(entry.key, current[pair[0] as int], pair[1] as Object);
          }
          for (final r in c['rows'] as List? ?? const []) {
            final row = r as List; // [b, id, v, ...]
            await tx.upsertRow(entry.key, current[row[0] as int], cols, row);
          }
        }
        await tx.setCursor(answer['cursor'] as String);
      });
      _verified.removeWhere((bucket, _) => removed.contains(bucket));
      final checksums = answer['checksums'] as Map<String, dynamic>? ?? const {};
      final damaged = await damagedBuckets(db, checksums, _verified);
      if (damaged.isNotEmpty) {
        await db.transaction((tx) async {
          for (final bucket in damaged) await tx.dropBucket(bucket);
          await tx.setCursor(null); // and pull everything from zero
        });
        _verified.clear();
        continue;
      }
      // Our own uploaded writes are in once a last page's watermark passes the push's visibleAfter.
      if (answer['hasMore'] != true) return;
    }
  }

  /// One pull from the stored cursor; null when 410 cursor-expired or 400 cursor-invalid was
  /// handled (local data dropped as told, in one transaction): the caller pulls again.
  Future<Map<String, dynamic>?> _pullOnce() async {
    final cursor = await db.cursor();
    try {
      return await _authed(() => api.postJson('/v1/sync/pull', {
            'app': app,
            'limit': limit,
            if (cursor != null) 'cursor': cursor, // absent (or null): no cursor, the first pull
          }));
    } on ApiProblem catch (p) {
      final expired = p.code == 'cursor-expired';
      if (!expired && p.code != 'cursor-invalid') rethrow; // 429, 503: _orLater keeps the cursor
      // 410 cursor-expired: drop `buckets`, continue from `resetCursor` (null: drop everything).
      // 400 cursor-invalid (damaged, or another user's or app's): drop everything, no cursor.
      final reset = expired ? (p.body['resetCursor'] as String?) : null;
      await db.transaction((tx) async {
        for (final bucket in _strings(p.body['buckets'])) await tx.dropBucket(bucket);
        if (reset == null) await tx.dropAll();
        await tx.setCursor(reset);
      });
      _verified.clear();
      return null;
    }
  }

  /// A columnar snapshot page: row i is columns[c][i]; `b` indexes the page's own buckets.current.
  Future<void> _applySnapshotPage(LocalTx tx, Map<String, dynamic> page) async {
    final current = _strings((page['buckets'] as Map)['current']);
    for (final entry in (page['changes'] as Map<String, dynamic>).entries) {
      final c = entry.value as Map<String, dynamic>;
      final cols = _strings(c['cols']);
      final columns = [for (final column in c['columns'] as List) column as List];
      for (var i = 0; i < (columns.isEmpty ? 0 : columns.first.length); i++) {
        final row = [for (final column in columns) column[i]];
        await tx.upsertRow(entry.key, current[row[0] as int], cols, row);
      }
    }
  }

  /// Runs [task]. 429, 503 (config-drift, unavailable) and other 5xx, timeouts and network
  /// errors leave the cursor and the queue as they are: [again] after Retry-After (else 5 s).
  Future<void> _orLater(Future<void> Function() task, Future<void> Function() again) async {
    try {
      await task();
    } catch (e) {
      final retryable = e is TimeoutException || e is http.ClientException ||
          (e is ApiProblem && (e.status == 429 || e.status >= 500));
      if (!retryable) rethrow;
      final wait = (e is ApiProblem ? e.retryAfter : null) ?? const Duration(seconds: 5);
      Timer(wait, () => _quietly(again)); // a real app also backs off and watches connectivity
    }
  }
  // #enddocregion pull-loop

  // #docregion upload-queue
  /// Stores a mutation in SQLite, with its id, BEFORE the UI shows it as done; then uploads.
  Future<Mutation> enqueue(String type, Map<String, dynamic> payload) async {
    final mutation = Mutation(
        id: _uuid.v4(), type: type, payload: payload, createdAt: DateTime.now().millisecondsSinceEpoch);
    await db.enqueue(mutation);
    _quietly(upload);
    return mutation;
  }

  /// An order taken offline: taken once this returns. Money stays a decimal string
  /// ("4.50": parse it with a decimal type such as package:decimal, never a double).
  Future<String> createOrder(int clientId, List<OrderLine> lines,
      {DateTime? requestedDelivery, String? notes}) async {
    final orderId = _uuid.v4();
    await enqueue('order.create', {
      'orderId': orderId,
      'clientId': clientId,
      'lines': [
        for (final l in lines)
          {
            'productId': l.productId,
            'qty': l.qty,
            if (l.note != null) 'note': l.note,
            if (l.price != null) 'price': l.price,
          },
      ],
      if (requestedDelivery != null) 'requestedDelivery': ymd(requestedDelivery), // 'YYYY-MM-DD'
      if (notes != null) 'notes': notes,
    });
    return orderId;
  }

  /// Uploads the queue in order, at most 500 per request. applied, duplicate and rejected are
  /// final: those entries leave the queue; retry_later keeps it and every one after it. A
  /// timeout or network error sends the SAME entries with the SAME ids again (_orLater):
  /// duplicates are answered, never applied twice. New data after a rejection: a new mutation.
  Future<void> _uploadAll() async {
    while (true) {
      final batch = await db.queued(limit: 500);
      if (batch.isEmpty) return;
      final byId = {for (final m in batch) m.id: m};
      final answer = await _authed(() => api.postJson('/v1/sync/push', {
            'deviceId': deviceId,
            'mutations': [for (final m in batch) m.toJson()],
          }));
      final done = <String>[];
      var retryLater = false;
      for (final r in answer['results'] as List) {
        final result = r as Map<String, dynamic>; // {id, status, firstStatus?, result?, error?}
        final error = result['error'] as Map<String, dynamic>?;
        if (error?['code'] == 'retry_later') {
          retryLater = true; // nothing recorded: it and those after it stay queued
          break;
        }
        done.add(result['id'] as String);
        if (error != null) {
          // rejected, or a duplicate whose first attempt was rejected: show it to the salesman
          final rejection = (
            code: error['code'] as String,
            message: error['message'] as String? ?? '',
            details: error['details'],
          );
          onRejected?.call(byId[result['id']]!, rejection);
        }
      }
      await db.dequeue(done);
      if (done.isNotEmpty) _quietly(sync); // the server's version: prices, totals, status
      if (retryLater) {
        Timer(const Duration(seconds: 5), () => _quietly(upload));
        return;
      }
    }
  }

  /// A rejection as text for the salesman.
  static String describeRejection(Rejection r) {
    final details = r.details is Map ? r.details as Map : const {};
    final short = [
      for (final l in details['lines'] as List? ?? const []) // [{productId, requested, available}]
        'product ${l['productId']}: ${l['requested']} asked, ${l['available']} available',
    ];
    return switch (r.code) {
      'insufficient_stock' => 'Not enough stock: ${short.join('; ')}',
      'client_not_yours' => 'This client belongs to another salesman.',
      _ => r.message,
    };
  }
  // #enddocregion upload-queue

  // #docregion push-channel
  /// Opens the Socket.IO channel with the same JWT. Every connect, reconnects included, runs
  /// one pull: events may have been missed while away.
  IO.Socket connectPushChannel() {
    final socket = IO.io(
        api.base.toString(),
        IO.OptionBuilder()
            .setTransports(['websocket'])
            .setPath('/socket.io')
            .setAuth({'token': api.token, 'app': app}) // app: counted per app in the server's metrics
            .enableReconnection()
            .build());
    socket.onConnect((_) => _quietly(sync));
    socket.on('sync:poke', (data) {
      // {buckets, head, pullWithinMs}: pull after a random delay, so a whole room does not pull at once
      if (_pokeTimer?.isActive ?? false) return; // a pull is already on its way
      final within = ((data as Map)['pullWithinMs'] as num?)?.toInt() ?? 0;
      _pokeTimer = Timer(Duration(milliseconds: _random.nextInt(within + 1)), () => _quietly(sync));
    });
    socket.on('session:expired', (_) => _quietly(() => _reconnect(socket, relogin: true)));
    void refused(dynamic error) {
      final data = error is Map ? error['data'] : null; // {message, data: {code, status}}
      final code = data is Map ? data['code'] : null;
      if (code == 'token-expired' || code == 'token-invalid' || code == 'token-missing') {
        _quietly(() => _reconnect(socket, relogin: true));
      } else if (code == 'rate-limited') {
        _quietly(() => _reconnect(socket, after: const Duration(seconds: 30)));
      } // else a network error: the client reconnects by itself
    }
    socket.onConnectError(refused);
    socket.on('error', refused); // older socket_io_client releases report a refused handshake here
    socket.on('catalog:image', (data) {
      final e = data as Map; // {collection, id, thumb}: a new image; thumb URL may be relative
      prefetchThumb?.call(e['collection'] as String, e['id'] as Object, api.resolve(e['thumb'] as String));
    });
    for (final event in const ['stock:changed', 'order:status']) {
      socket.on(event, (data) => onHint?.call(event, (data as Map).cast<String, dynamic>()));
    }
    return _socket = socket;
  }

  /// After session:expired or a refused handshake: log in again (or wait), then connect with
  /// the new token (the client does not retry a refused handshake by itself).
  Future<void> _reconnect(IO.Socket socket, {bool relogin = false, Duration after = Duration.zero}) async {
    if (_reconnecting) return;
    _reconnecting = true;
    try {
      await Future<void>.delayed(after);
      if (relogin) await _relogin();
      socket
        ..auth = {'token': api.token, 'app': app}
        ..disconnect()
        ..connect();
    } finally {
      _reconnecting = false;
    }
  }
  // #enddocregion push-channel

  /// Runs [task] in the background, reporting its errors to [onError].
  void _quietly(Future<void> Function() task) => unawaited(Future.sync(task).catchError(onError));
}

/// Runs one task at a time; a call while it runs asks for ONE more run after it (coalescing).
final class _Serial {
  _Serial(this._task);
  final Future<void> Function() _task;
  Future<void>? _running;
  bool _again = false;

  Future<void> call() {
    final running = _running;
    if (running == null) return _running = _loop();
    _again = true;
    return running;
  }

  Future<void> _loop() async {
    try {
      do {
        _again = false;
        await _task();
      } while (_again);
    } finally {
      _running = null;
    }
  }
}

/// A date as the API takes it: 'YYYY-MM-DD'.
String ymd(DateTime d) => [d.year, d.month, d.day].map((n) => '$n'.padLeft(2, '0')).join('-');

List<String> _strings(Object? list) => [for (final x in list as List? ?? const []) x as String];

void _logError(Object error, StackTrace stack) =>
    developer.log('fieldsync: $error', name: 'fieldsync', error: error, stackTrace: stack);
