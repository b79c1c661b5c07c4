// Interop: the JDK's own TLS stack (JSSE) and HTTP/2 client (java.net.http.HttpClient)
// calling the ledger over mutual TLS 1.3, as gRPC, with no gRPC or protobuf library.
//
// No build tool and no third-party jar: run it as a single source file (JDK 17+),
//
//   java interop/java/LedgerClient.java --target localhost:PORT --truststore trust.p12 \
//       --storepass-file PW --keystore payments.p12 balance alice
//   java interop/java/LedgerClient.java ... --keystore auditor.p12 transfer alice bob 100
//   java interop/java/LedgerClient.java interop --target localhost:PORT --truststore trust.p12 \
//       --storepass-file PW --payments payments.p12 --auditor auditor.p12 --empty empty.p12
//
// Keystores are PKCS#12: a key store holds the workload's key and its chain (leaf + CA, made
// with `openssl pkcs12 -export`), the trust store holds the CA as a trusted certificate entry
// (made with `keytool -importcert`: Java trusts only entries carrying its trusted-key-usage
// attribute, which OpenSSL 3.0 does not write). One password, read from a file, opens all.
//
// `interop` prints one line per case, `NAME expected=... observed=... PASS|FAIL` (the format
// of scripts/interop.sh), and exits 1 if any failed:
//
//   jdk-allowed      payments calls GetBalance: HTTP 200 over HTTP/2 and TLSv1.3,
//                    content-type application/grpc, no grpc-status error in the headers, and
//                    the body is one gRPC frame decoding to a GetBalanceResponse for the account
//   jdk-auditor-read the auditor calls GetBalance and reads the same balance (its certificate
//                    is good, so the next case's denial is the per-method policy)
//   jdk-denied       the auditor calls Transfer: grpc-status 7 (PERMISSION_DENIED) in a
//                    trailers-only response; payments then reads the balance, unchanged
//   jdk-no-cert      an empty key store (no certificate to offer), the JDK's TLS client alone
//                    (SSLSocket, ALPN h2): its handshake completes, the first read gets the
//                    alert certificate_required
//   jdk-no-cert-h2   the same through HttpClient, which writes the HTTP/2 preface and request
//                    right after its Finished: refused, alert certificate_required (the ledger
//                    drains a refused connection after its alert, so no reset destroys it)
//   jdk-tls1_2       TLSv1.2 only: refused at the handshake, alert protocol_version
//
// What the JDK client cannot see: HTTP/2 trailers. HttpClient reads a trailing HEADERS frame
// but does not expose it (HttpResponse has headers and a body, nothing else), so an OK call's
// `grpc-status: 0`, which tonic sends as a trailer, is invisible. A successful call is judged
// on what is visible: 200, application/grpc, no grpc-status in the headers, and a body that
// decodes. An error that tonic returns before any message is a trailers-only response: the
// grpc-status and grpc-message come in the (only) HEADERS frame, which HttpClient shows.

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.URLDecoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.UUID;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SNIHostName;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSession;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;

public class LedgerClient {
    static final Duration TIMEOUT = Duration.ofSeconds(10);
    static final String SERVICE = "/ledger.v1.Ledger/";
    static final String ACCOUNT = "alice", OTHER_ACCOUNT = "bob"; // services/ledger/src/book.rs

    // ---- protobuf, by hand: the ledger's messages are strings and int64s -------------------

    static final class Proto {
        private final ByteArrayOutputStream out = new ByteArrayOutputStream();

        Proto string(int field, String value) {
            if (value.isEmpty()) return this; // proto3: defaults are not written
            byte[] b = value.getBytes(StandardCharsets.UTF_8);
            varint((field << 3) | 2);
            varint(b.length);
            out.writeBytes(b);
            return this;
        }

        Proto int64(int field, long value) {
            if (value == 0) return this;
            varint((field << 3));
            varint(value);
            return this;
        }

        private void varint(long v) {
            while ((v & ~0x7FL) != 0) {
                out.write((int) ((v & 0x7F) | 0x80));
                v >>>= 7;
            }
            out.write((int) v);
        }

        byte[] bytes() {
            return out.toByteArray();
        }
    }

    /** Decodes a message's fields: field number -> the last value (Long, or byte[] if length-delimited). */
    static Map<Integer, Object> decode(byte[] b) {
        Map<Integer, Object> fields = new HashMap<>();
        int[] pos = {0};
        while (pos[0] < b.length) {
            long tag = readVarint(b, pos);
            int field = (int) (tag >>> 3), wire = (int) (tag & 7);
            if (field == 0) throw new IllegalArgumentException("protobuf: field number 0");
            switch (wire) {
                case 0 -> fields.put(field, readVarint(b, pos));
                case 1 -> pos[0] += 8;
                case 5 -> pos[0] += 4;
                case 2 -> {
                    long len = readVarint(b, pos);
                    if (len < 0 || pos[0] + len > b.length) throw new IllegalArgumentException("protobuf: truncated field " + field);
                    byte[] v = new byte[(int) len];
                    System.arraycopy(b, pos[0], v, 0, (int) len);
                    pos[0] += (int) len;
                    fields.put(field, v);
                }
                default -> throw new IllegalArgumentException("protobuf: wire type " + wire + " (field " + field + ")");
            }
            if (pos[0] > b.length) throw new IllegalArgumentException("protobuf: truncated field " + field);
        }
        return fields;
    }

    static long readVarint(byte[] b, int[] pos) {
        long v = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            if (pos[0] >= b.length) throw new IllegalArgumentException("protobuf: truncated varint");
            int x = b[pos[0]++] & 0xFF;
            v |= (long) (x & 0x7F) << shift;
            if ((x & 0x80) == 0) return v;
        }
        throw new IllegalArgumentException("protobuf: varint longer than 10 bytes");
    }

    static String str(Map<Integer, Object> m, int field) {
        return m.get(field) instanceof byte[] b ? new String(b, StandardCharsets.UTF_8) : "";
    }

    static long i64(Map<Integer, Object> m, int field) {
        return m.get(field) instanceof Long l ? l : 0L;
    }

    // ---- gRPC framing: a 5-byte header (compressed flag, big-endian length), then the message

    static byte[] frame(byte[] message) {
        byte[] f = new byte[5 + message.length];
        int n = message.length;
        f[1] = (byte) (n >>> 24);
        f[2] = (byte) (n >>> 16);
        f[3] = (byte) (n >>> 8);
        f[4] = (byte) n;
        System.arraycopy(message, 0, f, 5, n);
        return f;
    }

    static List<byte[]> unframe(byte[] body) {
        List<byte[]> messages = new ArrayList<>();
        int pos = 0;
        while (pos < body.length) {
            if (body.length - pos < 5) throw new IllegalArgumentException("gRPC: truncated frame header");
            if (body[pos] != 0) throw new IllegalArgumentException("gRPC: compressed message (none was asked for)");
            int n = ((body[pos + 1] & 0xFF) << 24) | ((body[pos + 2] & 0xFF) << 16) | ((body[pos + 3] & 0xFF) << 8) | (body[pos + 4] & 0xFF);
            if (n < 0 || body.length - pos - 5 < n) throw new IllegalArgumentException("gRPC: truncated message");
            byte[] m = new byte[n];
            System.arraycopy(body, pos + 5, m, 0, n);
            messages.add(m);
            pos += 5 + n;
        }
        return messages;
    }

    // ---- TLS and HTTP/2 --------------------------------------------------------------------

    static KeyStore load(Path file, char[] password) throws Exception {
        KeyStore ks = KeyStore.getInstance("PKCS12");
        try (var in = Files.newInputStream(file)) {
            ks.load(in, password);
        }
        return ks;
    }

    static SSLContext context(Path keystore, Path truststore, char[] password) throws Exception {
        KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        kmf.init(load(keystore, password), password);
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(load(truststore, password));
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(kmf.getKeyManagers(), tmf.getTrustManagers(), null);
        return ctx;
    }

    static HttpClient client(Path keystore, Path truststore, char[] password, String protocol) throws Exception {
        SSLContext ctx = context(keystore, truststore, password);
        SSLParameters params = ctx.getDefaultSSLParameters();
        params.setProtocols(new String[] {protocol});
        // HttpClient sets ALPN itself (h2, http/1.1 for HTTP_2) and checks the host name
        // against the server certificate's DNS SANs (HTTPS endpoint identification).
        return HttpClient.newBuilder()
                .version(HttpClient.Version.HTTP_2)
                .sslContext(ctx)
                .sslParameters(params)
                .connectTimeout(TIMEOUT)
                .build();
    }

    /**
     * The JDK's TLS client alone (an SSLSocket from the same SSLContext, ALPN h2, host name
     * checked): handshakes, then waits for the server's first bytes without writing any.
     * Returns what happened, in words. In TLS 1.3 the client's handshake is done once it has
     * sent its Finished, so a server that refuses the client's certificate says so in an
     * alert that the first read receives.
     */
    static String handshakeThenRead(SSLContext ctx, String target, String protocol) {
        int colon = target.lastIndexOf(':');
        String host = target.substring(0, colon);
        int port = Integer.parseInt(target.substring(colon + 1));
        try (SSLSocket socket = (SSLSocket) ctx.getSocketFactory().createSocket()) {
            socket.connect(new InetSocketAddress(host, port), (int) TIMEOUT.toMillis());
            socket.setSoTimeout((int) TIMEOUT.toMillis());
            SSLParameters params = ctx.getDefaultSSLParameters();
            params.setProtocols(new String[] {protocol});
            params.setApplicationProtocols(new String[] {"h2"});
            params.setEndpointIdentificationAlgorithm("HTTPS");
            params.setServerNames(List.of(new SNIHostName(host)));
            socket.setSSLParameters(params);
            socket.startHandshake();
            String done = "handshake done (" + socket.getSession().getProtocol() + ", ALPN " + socket.getApplicationProtocol() + ")";
            int b = socket.getInputStream().read();
            return done + "; first read: " + (b < 0 ? "end of stream" : "data");
        } catch (IOException e) {
            return errorChain(e);
        }
    }

    /** What one unary call looked like on the wire, or the exception that ended it. */
    record Call(int http, HttpClient.Version version, String tls, String contentType, Optional<String> grpcStatus,
                String grpcMessage, List<byte[]> messages, String problem, Throwable error) {
        boolean ok() {
            return error == null && problem == null && http == 200 && version == HttpClient.Version.HTTP_2
                    && "TLSv1.3".equals(tls) && contentType.startsWith("application/grpc")
                    && grpcStatus.map("0"::equals).orElse(true) && messages.size() == 1;
        }

        String transport() {
            return "HTTP " + http + " " + version + " " + tls + " " + contentType;
        }

        String describe() {
            if (error != null) return errorChain(error);
            var s = new StringBuilder(transport());
            s.append(grpcStatus.map(g -> "; grpc-status " + g + (grpcMessage.isEmpty() ? "" : " (" + grpcMessage + ")"))
                    .orElse("; no grpc-status in headers"));
            s.append("; ").append(messages.size()).append(" message(s)");
            if (problem != null) s.append("; ").append(problem);
            return s.toString();
        }
    }

    static Call call(HttpClient client, String target, String method, byte[] message) {
        return call(client, target, method, message, TIMEOUT);
    }

    static Call call(HttpClient client, String target, String method, byte[] message, Duration timeout) {
        HttpRequest request = HttpRequest.newBuilder(URI.create("https://" + target + SERVICE + method))
                .timeout(timeout)
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .header("grpc-timeout", timeout.toMillis() + "m")
                .POST(HttpRequest.BodyPublishers.ofByteArray(frame(message)))
                .build();
        try {
            HttpResponse<byte[]> r = client.send(request, HttpResponse.BodyHandlers.ofByteArray());
            String tls = r.sslSession().map(SSLSession::getProtocol).orElse("no TLS session");
            Optional<String> status = r.headers().firstValue("grpc-status");
            String grpcMessage = URLDecoder.decode(r.headers().firstValue("grpc-message").orElse("").replace("+", "%2B"),
                    StandardCharsets.UTF_8);
            List<byte[]> messages = List.of();
            String problem = null;
            try {
                messages = unframe(r.body());
            } catch (IllegalArgumentException e) {
                problem = e.getMessage();
            }
            return new Call(r.statusCode(), r.version(), tls, r.headers().firstValue("content-type").orElse("(none)"),
                    status, grpcMessage, messages, problem, null);
        } catch (IOException | InterruptedException e) {
            return new Call(0, null, "", "", Optional.empty(), "", List.of(), null, e);
        }
    }

    static String errorChain(Throwable e) {
        // HttpClient rethrows the cause as a copy of itself: show each distinct link once.
        List<String> links = new ArrayList<>();
        for (Throwable t = e; t != null; t = t.getCause() == t ? null : t.getCause()) {
            String link = t.getClass().getName() + ": " + t.getMessage();
            if (links.isEmpty() || !links.get(links.size() - 1).equals(link)) links.add(link);
        }
        return String.join(" <- ", links);
    }

    static boolean inChain(Throwable e, Class<?> type, String text) {
        for (Throwable t = e; t != null; t = t.getCause() == t ? null : t.getCause()) {
            if (type.isInstance(t) && String.valueOf(t.getMessage()).contains(text)) return true;
        }
        return false;
    }

    static byte[] balanceRequest(String account) {
        return new Proto().string(1, account).bytes();
    }

    static byte[] transferRequest(String from, String to, long cents, String memo) {
        return new Proto().string(1, UUID.randomUUID().toString()).string(2, from).string(3, to).int64(4, cents)
                .string(5, memo).bytes();
    }

    /** A GetBalanceResponse: account_id = 1, balance_cents = 2, currency = 3. */
    record Balance(String account, long cents, String currency) {
        static Balance of(Call c) {
            Map<Integer, Object> m = decode(c.messages().get(0));
            return new Balance(str(m, 1), i64(m, 2), str(m, 3));
        }

        @Override
        public String toString() {
            return account + "=" + cents + " " + currency;
        }
    }

    // ---- the interop cases -----------------------------------------------------------------

    static int failed = 0, cases = 0;

    static void report(String name, String expected, String observed, boolean ok) {
        cases++;
        if (!ok) failed++;
        observed = String.join(" ", observed.trim().split("\\s+"));
        System.out.printf("%-16s expected=%-34s observed=%s %s%n", name, expected, observed, ok ? "PASS" : "FAIL");
        System.out.flush();
    }

    /** A successful GetBalance for the account, or null (the reason is in `why`). */
    static Balance balance(Call c, String account, StringBuilder why) {
        if (!c.ok()) {
            why.append(c.describe());
            return null;
        }
        try {
            Balance b = Balance.of(c);
            if (!b.account().equals(account)) {
                why.append(c.describe()).append("; response for account '").append(b.account()).append("'");
                return null;
            }
            return b;
        } catch (IllegalArgumentException e) {
            why.append(c.describe()).append("; ").append(e.getMessage());
            return null;
        }
    }

    static int interop(Map<String, String> o) throws Exception {
        String target = req(o, "target");
        char[] pw = password(o);
        Path trust = Path.of(req(o, "truststore"));
        HttpClient payments = client(Path.of(req(o, "payments")), trust, pw, "TLSv1.3");
        HttpClient auditor = client(Path.of(req(o, "auditor")), trust, pw, "TLSv1.3");

        // jdk-allowed
        Call c = call(payments, target, "GetBalance", balanceRequest(ACCOUNT));
        StringBuilder why = new StringBuilder();
        Balance before = balance(c, ACCOUNT, why);
        report("jdk-allowed", "HTTP 200, h2, TLSv1.3, balance", before != null ? "OK " + before + "; " + c.describe() : why.toString(),
                before != null);

        // jdk-auditor-read
        c = call(auditor, target, "GetBalance", balanceRequest(ACCOUNT));
        why.setLength(0);
        Balance read = balance(c, ACCOUNT, why);
        report("jdk-auditor-read", "HTTP 200, same balance", read != null ? "OK " + read + "; " + c.describe() : why.toString(),
                read != null && before != null && read.cents() == before.cents());

        // jdk-denied: a trailers-only response carries grpc-status 7 in its headers, no body.
        c = call(auditor, target, "Transfer", transferRequest(ACCOUNT, OTHER_ACCOUNT, 100, "interop: the JDK auditor must not move money"));
        Call after = call(payments, target, "GetBalance", balanceRequest(ACCOUNT));
        why.setLength(0);
        Balance now = balance(after, ACCOUNT, why);
        boolean unchanged = now != null && before != null && now.cents() == before.cents();
        boolean denied = c.error() == null && c.http() == 200 && c.grpcStatus().equals(Optional.of("7")) && c.messages().isEmpty();
        report("jdk-denied", "grpc-status 7, balance unchanged",
                (c.error() == null ? c.transport() + "; grpc-status " + c.grpcStatus().orElse("(none)")
                        + (c.grpcMessage().isEmpty() ? "" : " (" + c.grpcMessage() + ")") + "; " + c.messages().size() + " message(s)"
                        : errorChain(c.error()))
                        + "; " + ACCOUNT + (unchanged ? " unchanged (" + now + ")" : " CHANGED or unreadable: " + (now != null ? now : why)),
                denied && unchanged);

        // jdk-no-cert: TLS 1.3 lets the client finish first; the server's alert arrives on the
        // first read. The JDK's TLS client alone, writing nothing after its Finished, so that
        // the server has read everything the client sent when it refuses.
        Path empty = Path.of(req(o, "empty"));
        String seen = handshakeThenRead(context(empty, trust, pw), target, "TLSv1.3");
        report("jdk-no-cert", "refused: alert certificate_required", seen,
                seen.startsWith("javax.net.ssl.SSLHandshakeException: Received fatal alert: certificate_required"));

        // jdk-no-cert-h2: the same through HttpClient, which writes the HTTP/2 preface and the
        // request right after its Finished. The ledger ends a refused connection with FIN after
        // the alert and drains what the client sent, so the alert arrives; a plain close would
        // have its kernel answer the unread bytes with a reset that destroys the alert (before
        // that fix: 1 run in 10 read the alert, 8 a reset, 1 timed out).
        c = call(client(empty, trust, pw, "TLSv1.3"), target, "GetBalance", balanceRequest(ACCOUNT), Duration.ofSeconds(5));
        boolean alerted = c.error() != null && c.http() == 0
                && inChain(c.error(), javax.net.ssl.SSLException.class, "certificate_required");
        report("jdk-no-cert-h2", "refused: alert certificate_required",
                c.error() != null ? errorChain(c.error()) : "answered: " + c.describe(), alerted);

        // jdk-tls1_2: the ledger speaks TLS 1.3 only.
        HttpClient tls12 = client(Path.of(req(o, "payments")), trust, pw, "TLSv1.2");
        c = call(tls12, target, "GetBalance", balanceRequest(ACCOUNT));
        report("jdk-tls1_2", "refused: alert protocol_version",
                c.error() != null ? errorChain(c.error()) : "answered: " + c.describe(),
                c.error() != null && inChain(c.error(), javax.net.ssl.SSLHandshakeException.class, "protocol_version"));

        System.out.printf("LedgerClient: %d cases, %d passed, %d failed (%s %s)%n", cases, cases - failed, failed,
                System.getProperty("java.vm.name"), System.getProperty("java.runtime.version"));
        return failed == 0 ? 0 : 1;
    }

    // ---- command line ----------------------------------------------------------------------

    static String req(Map<String, String> o, String name) {
        String v = o.get(name);
        if (v == null) throw new IllegalArgumentException("missing --" + name);
        return v;
    }

    static char[] password(Map<String, String> o) throws IOException {
        // A file, not an argument: arguments are visible to every user in `ps`.
        return Files.readString(Path.of(req(o, "storepass-file"))).strip().toCharArray();
    }

    static final String USAGE = """
            usage: java LedgerClient.java --target HOST:PORT --truststore T.p12 --storepass-file F
                       --keystore K.p12 [--tls TLSv1.3|TLSv1.2] (balance ACCOUNT | transfer FROM TO CENTS)
                   java LedgerClient.java interop --target HOST:PORT --truststore T.p12 --storepass-file F
                       --payments P.p12 --auditor A.p12 --empty E.p12""";

    public static void main(String[] args) throws Exception {
        Map<String, String> o = new LinkedHashMap<>();
        List<String> rest = new ArrayList<>();
        for (int i = 0; i < args.length; i++) {
            if (args[i].startsWith("--") && i + 1 < args.length) o.put(args[i].substring(2), args[++i]);
            else rest.add(args[i]);
        }
        int rc;
        try {
            if (rest.equals(List.of("interop"))) {
                rc = interop(o);
            } else if (rest.size() == 2 && rest.get(0).equals("balance") || rest.size() == 4 && rest.get(0).equals("transfer")) {
                HttpClient client = client(Path.of(req(o, "keystore")), Path.of(req(o, "truststore")), password(o),
                        o.getOrDefault("tls", "TLSv1.3"));
                Call c = rest.get(0).equals("balance")
                        ? call(client, req(o, "target"), "GetBalance", balanceRequest(rest.get(1)))
                        : call(client, req(o, "target"), "Transfer",
                                transferRequest(rest.get(1), rest.get(2), Long.parseLong(rest.get(3)), "LedgerClient.java"));
                System.out.println(c.describe());
                if (c.ok() && rest.get(0).equals("balance")) System.out.println(Balance.of(c));
                if (c.ok() && rest.get(0).equals("transfer")) {
                    // TransferResponse: transfer = 1 (TransferRecord: transfer_id = 1, initiated_by = 6), replayed = 2.
                    Map<Integer, Object> response = decode(c.messages().get(0));
                    Map<Integer, Object> record = decode(response.get(1) instanceof byte[] b ? b : new byte[0]);
                    System.out.println("transfer " + str(record, 1) + " by " + str(record, 6) + (i64(response, 2) != 0 ? " (replayed)" : ""));
                }
                rc = c.ok() ? 0 : 1;
            } else {
                System.err.println(USAGE);
                rc = 2;
            }
        } catch (IllegalArgumentException e) {
            System.err.println("LedgerClient: " + e.getMessage() + "\n" + USAGE);
            rc = 2;
        }
        System.exit(rc);
    }
}
