// SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-only
//
// weir trace, kernel side: the syscalls that make a proxied request's flow, for the traced
// processes only, one record per syscall (enter and exit merged here, in the kernel) streamed
// through a ring buffer. The reader (crates/weir-ebpf/src) rebuilds flows from the records.
//
// Built by crates/weir-ebpf/bpf/build.sh (Debian's clang 14); the object is committed and
// embedded so that `cargo build` needs no clang. `record.rs` parses what this writes: keep the
// layout of `struct record` and the `SYS_*` numbers in step with it.

#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

// What a record is about. Stable numbers: record.rs decodes them.
enum sys {
	SYS_ACCEPT = 1,
	SYS_ACCEPT4 = 2,
	SYS_SOCKET = 3,
	SYS_CONNECT = 4,
	SYS_SETSOCKOPT = 5,
	SYS_EPOLL_CTL = 6,
	SYS_EPOLL_WAIT = 7,
	SYS_EPOLL_PWAIT = 8,
	SYS_EPOLL_PWAIT2 = 9,
	SYS_READ = 10,
	SYS_READV = 11,
	SYS_RECVFROM = 12,
	SYS_RECVMSG = 13,
	SYS_WRITE = 14,
	SYS_WRITEV = 15,
	SYS_SENDTO = 16,
	SYS_SENDMSG = 17,
	SYS_SHUTDOWN = 18,
	SYS_CLOSE = 19,
	// Not syscalls: a traced process forked (task/task_newtask); a thread entered the
	// epoll_wait family (its wake round ended; the call's own record comes at its exit).
	EV_FORK = 20,
	EV_WAIT = 21,
};

// The first bytes a read or write moved: enough for a request line or a status line.
#define HEAD 64
// Ready events kept per epoll_wait (the count is always exact, in `ret`).
#define MAX_EVENTS 128
// x86_64's struct epoll_event is packed: u32 events, then u64 data.
#define EPOLL_EVENT_SIZE 12
// The largest address kept (sizeof(struct sockaddr_in6)).
#define SOCKADDR_MAX 28
// iovecs summed for the size a readv/writev/recvmsg/sendmsg asked for.
#define MAX_IOV 8
// Wake the reader only once this much is pending (it also polls on a short timer).
#define WAKE_BYTES (256 * 1024)

// One record in the ring buffer, followed by `len` bytes of data (at most HEAD, or
// MAX_EVENTS * EPOLL_EVENT_SIZE for the epoll_wait family). 64 bytes, little endian.
struct record {
	__u64 enter_ns;
	__u64 exit_ns;
	__u32 tgid;
	__u32 tid;
	__s64 ret;
	__u16 sys;
	__u16 len;
	__s32 fd;
	// Per `sys`: see record.rs.
	__u64 a[3];
};

// A syscall between its enter and exit, per thread.
struct inflight {
	__u64 enter_ns;
	__u64 a[3];
	// A user buffer to read at exit (what was read or written; epoll's ready events).
	__u64 ptr;
	// How many bytes at `ptr` belong to the call (the first iovec's length).
	__u64 cap;
	__s32 fd;
	__u16 sys;
	__u16 len;
	// A sockaddr (connect) or epoll_event data (epoll_ctl), read at enter.
	__u8 data[32];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u8);
} pids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct inflight);
} inflight SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 * 1024 * 1024);
} events SEC(".maps");

// Records lost: [0] the ring buffer was full, [1] the in-flight table was full.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

// A scratch inflight value: too big for the 512-byte BPF stack next to the rest.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct inflight);
} scratch SEC(".maps");

// The syscall tracepoints' contexts: arguments at 16 + 8 * i, `ret` at 16.
struct sys_enter_ctx {
	__u64 common;
	__s64 nr;
	__u64 args[6];
};

struct sys_exit_ctx {
	__u64 common;
	__s64 nr;
	__s64 ret;
};

struct newtask_ctx {
	__u64 common;
	__s32 pid;
	char comm[16];
	__u64 clone_flags;
};

struct iovec_user {
	__u64 base;
	__u64 len;
};

static __always_inline void count_drop(__u32 which)
{
	__u64 *n = bpf_map_lookup_elem(&drops, &which);
	if (n)
		*n += 1;
}

static __always_inline int traced(void)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	return bpf_map_lookup_elem(&pids, &tgid) != 0;
}

// A zeroed scratch value for the current syscall, or NULL when this thread is not traced.
static __always_inline struct inflight *begin(__u16 sys, __s32 fd)
{
	if (!traced())
		return 0;
	__u32 zero = 0;
	struct inflight *in = bpf_map_lookup_elem(&scratch, &zero);
	if (!in)
		return 0;
	__builtin_memset(in, 0, sizeof(*in));
	in->enter_ns = bpf_ktime_get_ns();
	in->sys = sys;
	in->fd = fd;
	return in;
}

static __always_inline int keep(struct inflight *in)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	if (bpf_map_update_elem(&inflight, &tid, in, BPF_ANY))
		count_drop(1);
	return 0;
}

// Sums the lengths of up to MAX_IOV iovecs at `iov` into a[0]; the first one's buffer is
// the one whose head is kept.
static __always_inline void iovecs(struct inflight *in, __u64 iov, __u64 count)
{
	struct iovec_user v;
	__u64 total = 0;
#pragma unroll
	for (int i = 0; i < MAX_IOV; i++) {
		if (i >= count)
			break;
		if (bpf_probe_read_user(&v, sizeof(v), (void *)(iov + i * sizeof(v))))
			break;
		if (i == 0) {
			in->ptr = v.base;
			in->cap = v.len;
		}
		total += v.len;
	}
	in->a[0] = total;
	in->a[1] = count;
}

// Enter handlers: one per syscall, each reading only the arguments its tracepoint has.

#define ENTER_FD(name, SYS)                                                                \
	SEC("tracepoint/syscalls/sys_enter_" #name)                                        \
	int enter_##name(struct sys_enter_ctx *ctx)                                        \
	{                                                                                  \
		struct inflight *in = begin(SYS, (__s32)ctx->args[0]);                     \
		return in ? keep(in) : 0;                                                  \
	}

ENTER_FD(close, SYS_CLOSE)

SEC("tracepoint/syscalls/sys_enter_shutdown")
int enter_shutdown(struct sys_enter_ctx *ctx)
{
	struct inflight *in = begin(SYS_SHUTDOWN, (__s32)ctx->args[0]);
	if (!in)
		return 0;
	in->a[0] = ctx->args[1];
	return keep(in);
}

// accept/accept4(fd, addr, addrlen[, flags]): the peer's address is read at exit.
SEC("tracepoint/syscalls/sys_enter_accept")
int enter_accept(struct sys_enter_ctx *ctx)
{
	struct inflight *in = begin(SYS_ACCEPT, (__s32)ctx->args[0]);
	if (!in)
		return 0;
	in->ptr = ctx->args[1];
	return keep(in);
}

SEC("tracepoint/syscalls/sys_enter_accept4")
int enter_accept4(struct sys_enter_ctx *ctx)
{
	struct inflight *in = begin(SYS_ACCEPT4, (__s32)ctx->args[0]);
	if (!in)
		return 0;
	in->ptr = ctx->args[1];
	in->a[0] = ctx->args[3];
	return keep(in);
}

SEC("tracepoint/syscalls/sys_enter_socket")
int enter_socket(struct sys_enter_ctx *ctx)
{
	struct inflight *in = begin(SYS_SOCKET, -1);
	if (!in)
		return 0;
	in->a[0] = ctx->args[0];
	in->a[1] = ctx->args[1];
	in->a[2] = ctx->args[2];
	return keep(in);
}

// connect(fd, addr, addrlen): the address is read now, while it is certainly there.
SEC("tracepoint/syscalls/sys_enter_connect")
int enter_connect(struct sys_enter_ctx *ctx)
{
	struct inflight *in = begin(SYS_CONNECT, (__s32)ctx->args[0]);
	if (!in)
		return 0;
	// sockaddr_in6 is the largest address kept; callers often pass sizeof(sockaddr_storage).
	__u64 len = ctx->args[2];
	if (len > SOCKADDR_MAX)
		len = SOCKADDR_MAX;
	if (ctx->args[1] && len > 0 && !bpf_probe_read_user(in->data, len & 31, (void *)ctx->args[1]))
		in->len = len & 31;
	return keep(in);
}

// setsockopt(fd, level, optname, optval, optlen): a[2] is the first 4 bytes of the value.
SEC("tracepoint/syscalls/sys_enter_setsockopt")
int enter_setsockopt(struct sys_enter_ctx *ctx)
{
	struct inflight *in = begin(SYS_SETSOCKOPT, (__s32)ctx->args[0]);
	if (!in)
		return 0;
	__u32 value = 0;
	in->a[0] = ctx->args[1];
	in->a[1] = ctx->args[2];
	if (ctx->args[3] && ctx->args[4] >= 4)
		bpf_probe_read_user(&value, sizeof(value), (void *)ctx->args[3]);
	in->a[2] = value;
	return keep(in);
}

// epoll_ctl(epfd, op, fd, event): a[0] op, a[1] fd, a[2] the event mask, data[0..8] its data.
SEC("tracepoint/syscalls/sys_enter_epoll_ctl")
int enter_epoll_ctl(struct sys_enter_ctx *ctx)
{
	struct inflight *in = begin(SYS_EPOLL_CTL, (__s32)ctx->args[0]);
	if (!in)
		return 0;
	in->a[0] = ctx->args[1];
	in->a[1] = ctx->args[2];
	__u8 event[EPOLL_EVENT_SIZE];
	if (ctx->args[3] && !bpf_probe_read_user(event, sizeof(event), (void *)ctx->args[3])) {
		in->a[2] = *(__u32 *)event;
		__builtin_memcpy(in->data, event + 4, 8);
		in->len = 8;
	}
	return keep(in);
}

// Submits a record, waking the reader only when WAKE_BYTES are pending (it also polls on a
// short timer): a wakeup per record would cost the traced process more than the record.
static __always_inline void submit(void *r)
{
	__u64 pending = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	bpf_ringbuf_submit(r, pending >= WAKE_BYTES ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
}

// A record with no syscall behind it (or whose enter was not seen): the header alone, at
// `at`, for the current thread. NULL (counted as a drop) when the ring is full.
static __always_inline struct record *bare(__u16 sys, __s32 fd, __u64 at)
{
	struct record *r = bpf_ringbuf_reserve(&events, sizeof(struct record), 0);
	if (!r) {
		count_drop(0);
		return 0;
	}
	__u64 id = bpf_get_current_pid_tgid();
	__builtin_memset(r, 0, sizeof(*r));
	r->enter_ns = r->exit_ns = at;
	r->tgid = id >> 32;
	r->tid = (__u32)id;
	r->sys = sys;
	r->fd = fd;
	return r;
}

// The EV_WAIT record: sent at once, so that a round's end is known while the thread sleeps.
static __always_inline int waiting(struct inflight *in)
{
	struct record *r = bare(EV_WAIT, in->fd, in->enter_ns);
	if (r)
		submit(r);
	return 0;
}

// epoll_wait/epoll_pwait/epoll_pwait2(epfd, events, maxevents, timeout…): the ready events
// are read at exit. a[0] maxevents, a[1] the timeout in ms (-1 forever; pwait2: -2, a timespec).
#define ENTER_EPOLL_WAIT(name, SYS, TIMEOUT)                                               \
	SEC("tracepoint/syscalls/sys_enter_" #name)                                        \
	int enter_##name(struct sys_enter_ctx *ctx)                                        \
	{                                                                                  \
		struct inflight *in = begin(SYS, (__s32)ctx->args[0]);                     \
		if (!in)                                                                   \
			return 0;                                                          \
		in->ptr = ctx->args[1];                                                    \
		in->a[0] = ctx->args[2];                                                   \
		in->a[1] = TIMEOUT;                                                        \
		keep(in);                                                                  \
		return waiting(in);                                                        \
	}

ENTER_EPOLL_WAIT(epoll_wait, SYS_EPOLL_WAIT, ctx->args[3])
ENTER_EPOLL_WAIT(epoll_pwait, SYS_EPOLL_PWAIT, ctx->args[3])
ENTER_EPOLL_WAIT(epoll_pwait2, SYS_EPOLL_PWAIT2, (__u64)-2)

// read/write(fd, buf, count) and recvfrom/sendto(fd, buf, len, flags, …): a[0] the size asked.
#define ENTER_BUF(name, SYS)                                                               \
	SEC("tracepoint/syscalls/sys_enter_" #name)                                        \
	int enter_##name(struct sys_enter_ctx *ctx)                                        \
	{                                                                                  \
		struct inflight *in = begin(SYS, (__s32)ctx->args[0]);                     \
		if (!in)                                                                   \
			return 0;                                                          \
		in->ptr = ctx->args[1];                                                    \
		in->cap = ctx->args[2];                                                    \
		in->a[0] = ctx->args[2];                                                   \
		return keep(in);                                                           \
	}

ENTER_BUF(read, SYS_READ)
ENTER_BUF(write, SYS_WRITE)
ENTER_BUF(recvfrom, SYS_RECVFROM)
ENTER_BUF(sendto, SYS_SENDTO)

// readv/writev(fd, iov, iovcnt): a[0] the size asked (the first MAX_IOV iovecs), a[1] iovcnt.
#define ENTER_IOV(name, SYS)                                                               \
	SEC("tracepoint/syscalls/sys_enter_" #name)                                        \
	int enter_##name(struct sys_enter_ctx *ctx)                                        \
	{                                                                                  \
		struct inflight *in = begin(SYS, (__s32)ctx->args[0]);                     \
		if (!in)                                                                   \
			return 0;                                                          \
		iovecs(in, ctx->args[1], ctx->args[2]);                                    \
		return keep(in);                                                           \
	}

ENTER_IOV(readv, SYS_READV)
ENTER_IOV(writev, SYS_WRITEV)

// recvmsg/sendmsg(fd, msghdr, flags): msg_iov at offset 16, msg_iovlen at 24.
#define ENTER_MSG(name, SYS)                                                               \
	SEC("tracepoint/syscalls/sys_enter_" #name)                                        \
	int enter_##name(struct sys_enter_ctx *ctx)                                        \
	{                                                                                  \
		struct inflight *in = begin(SYS, (__s32)ctx->args[0]);                     \
		if (!in)                                                                   \
			return 0;                                                          \
		__u64 iov[2] = {0, 0};                                                     \
		if (ctx->args[1])                                                          \
			bpf_probe_read_user(iov, sizeof(iov), (void *)(ctx->args[1] + 16)); \
		iovecs(in, iov[0], iov[1]);                                                \
		in->a[2] = ctx->args[2];                                                   \
		return keep(in);                                                           \
	}

ENTER_MSG(recvmsg, SYS_RECVMSG)
ENTER_MSG(sendmsg, SYS_SENDMSG)

// Exit: merge with the enter, copy what the call moved, and submit one record.

static __always_inline void fill(struct record *r, struct inflight *in, __s64 ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	r->enter_ns = in->enter_ns;
	r->exit_ns = bpf_ktime_get_ns();
	r->tgid = id >> 32;
	r->tid = (__u32)id;
	r->ret = ret;
	r->sys = in->sys;
	r->len = 0;
	r->fd = in->fd;
	r->a[0] = in->a[0];
	r->a[1] = in->a[1];
	r->a[2] = in->a[2];
}

static __always_inline struct inflight *finish(void)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	return bpf_map_lookup_elem(&inflight, &tid);
}

static __always_inline void forget(void)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	bpf_map_delete_elem(&inflight, &tid);
}

// Everything but the epoll_wait family: the header plus up to HEAD bytes.
static __always_inline int exit_small(struct sys_exit_ctx *ctx)
{
	struct inflight *in = finish();
	if (!in)
		return 0;
	__u8 *r = bpf_ringbuf_reserve(&events, sizeof(struct record) + HEAD, 0);
	if (!r) {
		count_drop(0);
		forget();
		return 0;
	}
	struct record *rec = (struct record *)r;
	__s64 ret = ctx->ret;
	fill(rec, in, ret);
	__u8 *data = r + sizeof(struct record);
	if (in->len) {
		// connect's address, epoll_ctl's data.
		__builtin_memcpy(data, in->data, sizeof(in->data));
		rec->len = in->len;
	} else if (ret > 0 && in->ptr) {
		// What a read or write moved (accept: the peer's address).
		__u64 n = in->sys == SYS_ACCEPT || in->sys == SYS_ACCEPT4 ? SOCKADDR_MAX : (__u64)ret;
		if (n > in->cap && in->cap)
			n = in->cap;
		if (n > HEAD)
			n = HEAD;
		if (n > 0 && !bpf_probe_read_user(data, n, (void *)in->ptr))
			rec->len = n;
	}
	forget();
	submit(r);
	return 0;
}

static __always_inline int exit_ready(struct sys_exit_ctx *ctx, __u16 sys)
{
	struct inflight *in = finish();
	if (!in) {
		// A wait that began before tracing did: its events are unknown, but its round is
		// not (a header alone, enter_ns = exit_ns).
		if (!traced())
			return 0;
		struct record *r = bare(sys, -1, bpf_ktime_get_ns());
		if (r) {
			r->ret = ctx->ret;
			submit(r);
		}
		return 0;
	}
	__u8 *r = bpf_ringbuf_reserve(&events,
				      sizeof(struct record) + MAX_EVENTS * EPOLL_EVENT_SIZE, 0);
	if (!r) {
		count_drop(0);
		forget();
		return 0;
	}
	struct record *rec = (struct record *)r;
	__s64 ret = ctx->ret;
	fill(rec, in, ret);
	if (ret > 0 && in->ptr) {
		__u64 n = ret > MAX_EVENTS ? MAX_EVENTS : ret;
		__u64 size = n * EPOLL_EVENT_SIZE;
		if (size > MAX_EVENTS * EPOLL_EVENT_SIZE)
			size = MAX_EVENTS * EPOLL_EVENT_SIZE;
		if (!bpf_probe_read_user(r + sizeof(struct record), size, (void *)in->ptr))
			rec->len = size;
	}
	forget();
	submit(r);
	return 0;
}

#define EXIT(name, handler)                                                                \
	SEC("tracepoint/syscalls/sys_exit_" #name)                                         \
	int exit_##name(struct sys_exit_ctx *ctx)                                          \
	{                                                                                  \
		return handler(ctx);                                                       \
	}

#define EXIT_WAIT(name, SYS)                                                               \
	SEC("tracepoint/syscalls/sys_exit_" #name)                                         \
	int exit_##name(struct sys_exit_ctx *ctx)                                          \
	{                                                                                  \
		return exit_ready(ctx, SYS);                                               \
	}

EXIT(accept, exit_small)
EXIT(accept4, exit_small)
EXIT(socket, exit_small)
EXIT(connect, exit_small)
EXIT(setsockopt, exit_small)
EXIT(epoll_ctl, exit_small)
EXIT_WAIT(epoll_wait, SYS_EPOLL_WAIT)
EXIT_WAIT(epoll_pwait, SYS_EPOLL_PWAIT)
EXIT_WAIT(epoll_pwait2, SYS_EPOLL_PWAIT2)
EXIT(read, exit_small)
EXIT(readv, exit_small)
EXIT(recvfrom, exit_small)
EXIT(recvmsg, exit_small)
EXIT(write, exit_small)
EXIT(writev, exit_small)
EXIT(sendto, exit_small)
EXIT(sendmsg, exit_small)
EXIT(shutdown, exit_small)
EXIT(close, exit_small)

// A traced process forked: with --children the child is traced too (threads need nothing:
// they share the tgid). a[0] the child's pid, a[1] the clone flags.
#define CLONE_THREAD 0x00010000

SEC("tracepoint/task/task_newtask")
int on_newtask(struct newtask_ctx *ctx)
{
	if (!traced() || (ctx->clone_flags & CLONE_THREAD))
		return 0;
	__u32 child = ctx->pid;
	__u8 one = 1;
	bpf_map_update_elem(&pids, &child, &one, BPF_ANY);
	struct record *r = bare(EV_FORK, -1, bpf_ktime_get_ns());
	if (!r)
		return 0;
	r->a[0] = child;
	r->a[1] = ctx->clone_flags;
	submit(r);
	return 0;
}
