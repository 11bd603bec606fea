/*
 * sendfile(2) for the Node entry (src/node/sendfile.ts): plugin files go from the page cache to
 * the socket without being copied into the process or from it into the socket buffer (issue 22:
 * identity downloads cost 9-14x nginx's CPU with the copy, 1.5x with this). Node has no such call
 * (nodejs/node#41393 was closed; PR #47970 only a stub) and no maintained addon offers one.
 *
 * A sender owns a dup(2) of the socket's descriptor and a uv_poll_t on it: libuv allows one
 * watcher per descriptor, and the socket's own is Node's (reading the next request), so
 * writability is watched on the duplicate. send() calls sendfile(2) once (the socket is
 * non-blocking: a short count or EAGAIN means it is full); watch() calls back each time the socket
 * can take more, until pause() or close(): the watcher stays registered while there is something
 * to send (level-triggered: a sender that stopped for its turn is called back on the loop's next
 * turn), so a socket-full costs no epoll_ctl; a sender waiting for a file still being written
 * pauses it, or a writable socket would call it back on every turn. close() must come before
 * Node's socket is gone for good: while the duplicate is open, the connection stays open.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <node_api.h>
#include <stdlib.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

typedef struct {
  uv_poll_t poll;
  int fd;
  napi_env env;
  napi_ref callback;
  napi_async_context context;
  int closed;         /* close() was called: nothing more is sent or called back */
  int handle_closed;  /* libuv let go of the poll handle */
  int finalized;      /* V8 let go of the external: the last owner frees */
} sender_t;

#define CHECK(call)                                                    \
  do {                                                                 \
    if ((call) != napi_ok) {                                           \
      napi_throw_error(env, NULL, "sendfile addon: " #call " failed"); \
      return NULL;                                                     \
    }                                                                  \
  } while (0)

static sender_t *unwrap(napi_env env, napi_value value) {
  void *data = NULL;
  if (napi_get_value_external(env, value, &data) != napi_ok) return NULL;
  return (sender_t *)data;
}

static void on_handle_closed(uv_handle_t *handle) {
  sender_t *s = (sender_t *)handle->data;
  close(s->fd);
  s->handle_closed = 1;
  if (s->finalized) free(s);
}

static void close_sender(napi_env env, sender_t *s) {
  if (s->closed) return;
  s->closed = 1;
  if (s->callback) napi_delete_reference(env, s->callback);
  s->callback = NULL;
  napi_async_destroy(env, s->context);
  uv_poll_stop(&s->poll);
  uv_close((uv_handle_t *)&s->poll, on_handle_closed);
}

/* A sender dropped without close() (a bug of the caller's) still gives its descriptor back. */
static void finalize(napi_env env, void *data, void *hint) {
  sender_t *s = (sender_t *)data;
  (void)hint;
  s->finalized = 1;
  if (!s->closed) close_sender(env, s);
  else if (s->handle_closed) free(s);
}

/* open(socketFd) -> sender */
static napi_value Open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result, name;
  int32_t fd;
  uv_loop_t *loop;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  CHECK(napi_get_uv_event_loop(env, &loop));
  sender_t *s = calloc(1, sizeof(sender_t));
  if (!s) {
    napi_throw_error(env, NULL, "sendfile addon: out of memory");
    return NULL;
  }
  s->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  s->env = env;
  if (s->fd < 0 || uv_poll_init(loop, &s->poll, s->fd) != 0) {
    if (s->fd >= 0) close(s->fd);
    free(s);
    napi_throw_error(env, NULL, "sendfile addon: cannot watch the socket");
    return NULL;
  }
  s->poll.data = s;
  CHECK(napi_create_string_utf8(env, "sendfile", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_create_object(env, &result));
  CHECK(napi_async_init(env, result, name, &s->context));
  CHECK(napi_create_external(env, s, finalize, NULL, &result));
  return result;
}

/* send(sender, fileFd, offset, count) -> bytes sent (0: the file ends before offset), or -errno (-EAGAIN: the socket is full) */
static napi_value Send(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], result;
  int32_t in;
  int64_t offset, count, sent;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sender_t *s = unwrap(env, argv[0]);
  CHECK(napi_get_value_int32(env, argv[1], &in));
  CHECK(napi_get_value_int64(env, argv[2], &offset));
  CHECK(napi_get_value_int64(env, argv[3], &count));
  if (!s || s->closed || offset < 0 || count < 0) {
    sent = -EBADF;
  } else {
    off_t off = (off_t)offset;
    ssize_t n = sendfile(s->fd, in, &off, (size_t)count);
    sent = n >= 0 ? (int64_t)n : -(int64_t)errno;
  }
  CHECK(napi_create_int64(env, sent, &result));
  return result;
}

static void on_writable(uv_poll_t *poll, int status, int events) {
  sender_t *s = (sender_t *)poll->data;
  napi_env env = s->env;
  napi_handle_scope scope;
  napi_value callback, receiver, argv[1];
  (void)events;
  if (s->closed || !s->callback) return;
  if (status < 0) uv_poll_stop(poll); /* told once */
  napi_open_handle_scope(env, &scope);
  napi_get_reference_value(env, s->callback, &callback);
  napi_get_global(env, &receiver); /* make_callback wants an object */
  napi_create_int32(env, status, &argv[0]);
  // make_callback, not call_function: the callback's promises and nextTicks run after it, as for any I/O callback.
  if (napi_make_callback(env, s->context, receiver, callback, 1, argv, NULL) == napi_pending_exception) {
    napi_value error;
    napi_get_and_clear_last_exception(env, &error);
    napi_fatal_exception(env, error);
  }
  napi_close_handle_scope(env, scope);
}

/* watch(sender, callback(status)): calls back whenever the socket can take more, until pause() or close() (status < 0: it failed, once) */
static napi_value Watch(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sender_t *s = unwrap(env, argv[0]);
  if (!s || s->closed) {
    napi_throw_error(env, NULL, "sendfile addon: watch on a closed sender");
    return NULL;
  }
  if (s->callback) napi_delete_reference(env, s->callback);
  CHECK(napi_create_reference(env, argv[1], 1, &s->callback));
  if (uv_poll_start(&s->poll, UV_WRITABLE | UV_DISCONNECT, on_writable) != 0) {
    napi_delete_reference(env, s->callback);
    s->callback = NULL;
    napi_throw_error(env, NULL, "sendfile addon: cannot watch the socket");
  }
  return NULL;
}

/* pause(sender): no more callbacks until the next watch() */
static napi_value Pause(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sender_t *s = unwrap(env, argv[0]);
  if (s && !s->closed) uv_poll_stop(&s->poll);
  return NULL;
}

/* cork(sender, on): TCP_CORK, as nginx's tcp_nopush: the headers and the file leave in full segments; off pushes the rest */
static napi_value Cork(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  bool on;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sender_t *s = unwrap(env, argv[0]);
  CHECK(napi_get_value_bool(env, argv[1], &on));
  int value = on ? 1 : 0;
  /* A failure only loses the batching (not a TCP socket, or gone): the sends report what matters. */
  if (s && !s->closed) (void)setsockopt(s->fd, IPPROTO_TCP, TCP_CORK, &value, sizeof value);
  return NULL;
}

/* close(sender): stops watching and closes the duplicate (the socket itself stays Node's); idempotent */
static napi_value Close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sender_t *s = unwrap(env, argv[0]);
  if (s) close_sender(env, s);
  return NULL;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"open", NULL, Open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"send", NULL, Send, NULL, NULL, NULL, napi_enumerable, NULL},
      {"watch", NULL, Watch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pause", NULL, Pause, NULL, NULL, NULL, napi_enumerable, NULL},
      {"cork", NULL, Cork, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, Close, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
