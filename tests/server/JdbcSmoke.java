// pgjdbc (Debian libpostgresql-jdbc-java) against `augur serve`: connect, DDL, a prepared
// statement with parameters, typed getters, and the catalog calls BI tools make through
// DatabaseMetaData. Run as `java -cp postgresql.jar JdbcSmoke.java PORT`; prints
// "jdbc: all checks passed" or throws.
import java.sql.*;

public class JdbcSmoke {
    static void check(boolean ok, String what) {
        if (!ok) throw new AssertionError(what);
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/augur?user=augur&connectTimeout=10";
        try (Connection conn = DriverManager.getConnection(url)) {
            try (Statement st = conn.createStatement()) {
                st.execute("CREATE TABLE loans AS SELECT * FROM (VALUES (1, 'ok', 120.5), (2, 'late', 80.25)) v(id, status, amount)");
            }
            try (PreparedStatement ps = conn.prepareStatement("SELECT id, status, amount FROM loans WHERE amount > ? ORDER BY id")) {
                ps.setDouble(1, 100.0);
                try (ResultSet rs = ps.executeQuery()) {
                    check(rs.next(), "one row expected");
                    check(rs.getLong("id") == 1 && rs.getString("status").equals("ok") && rs.getDouble("amount") == 120.5,
                        "row: " + rs.getLong(1) + " " + rs.getString(2) + " " + rs.getDouble(3));
                    check(!rs.next(), "only one row expected");
                }
            }
            DatabaseMetaData meta = conn.getMetaData();
            check(meta.getDatabaseProductVersion().startsWith("16."), "version " + meta.getDatabaseProductVersion());
            boolean found = false;
            try (ResultSet tables = meta.getTables(null, "public", "%", new String[] {"TABLE"})) {
                while (tables.next()) found |= tables.getString("TABLE_NAME").equals("loans");
            }
            check(found, "getTables does not list loans");
            try (ResultSet cols = meta.getColumns(null, "public", "loans", "%")) {
                int n = 0;
                while (cols.next()) n++;
                check(n == 3, "getColumns found " + n + " columns");
            }
        }
        System.out.println("jdbc: all checks passed");
    }
}
