// The dataset's schema: its tables, and the view, trigger, routines and event created after the rows.

// ---------------------------------------------------------------------------------------------------------
// Schema.

export const TABLES_DDL: string[] = [
  `CREATE TABLE hr.departments (
    id INT NOT NULL PRIMARY KEY,
    name VARCHAR(64) NOT NULL,
    budget DECIMAL(14,2) NOT NULL,
    created_at DATETIME NOT NULL,
    UNIQUE KEY uk_name (name)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  `CREATE TABLE hr.employees (
    id INT NOT NULL PRIMARY KEY,
    dept_id INT NOT NULL,
    first_name VARCHAR(40) NOT NULL,
    last_name VARCHAR(40) NOT NULL,
    email VARCHAR(120) NOT NULL,
    hired_on DATE NOT NULL,
    salary DECIMAL(10,2) NOT NULL,
    bio TEXT NOT NULL,
    photo BLOB NOT NULL,
    KEY k_dept (dept_id),
    KEY k_name (last_name, first_name),
    CONSTRAINT fk_employees_dept FOREIGN KEY (dept_id) REFERENCES hr.departments (id)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  `CREATE TABLE shop.customers (
    id INT NOT NULL PRIMARY KEY,
    email VARCHAR(120) NOT NULL,
    name VARCHAR(80) NOT NULL,
    country CHAR(2) NOT NULL,
    city VARCHAR(40) NOT NULL,
    created_at DATETIME NOT NULL,
    balance DECIMAL(12,2) NOT NULL,
    loyalty_points INT NOT NULL,
    notes TEXT NOT NULL,
    UNIQUE KEY uk_email (email),
    KEY k_country_city (country, city),
    KEY k_created (created_at)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  `CREATE TABLE shop.products (
    id INT NOT NULL PRIMARY KEY,
    sku VARCHAR(32) NOT NULL,
    title VARCHAR(200) NOT NULL,
    category VARCHAR(40) NOT NULL,
    price DECIMAL(10,2) NOT NULL,
    stock INT NOT NULL,
    attrs TEXT NOT NULL,
    image BLOB NOT NULL,
    UNIQUE KEY uk_sku (sku),
    KEY k_category_price (category, price)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  `CREATE TABLE shop.orders (
    id BIGINT NOT NULL PRIMARY KEY,
    customer_id INT NOT NULL,
    created_at DATETIME NOT NULL,
    status VARCHAR(16) NOT NULL,
    total DECIMAL(14,2) NOT NULL,
    currency CHAR(3) NOT NULL,
    shipping_address VARCHAR(255) NOT NULL,
    note TEXT NOT NULL,
    KEY k_customer (customer_id, created_at),
    KEY k_status (status, created_at),
    CONSTRAINT fk_orders_customer FOREIGN KEY (customer_id) REFERENCES shop.customers (id)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  `CREATE TABLE shop.order_items (
    order_id BIGINT NOT NULL,
    line SMALLINT NOT NULL,
    product_id INT NOT NULL,
    qty INT NOT NULL,
    unit_price DECIMAL(10,2) NOT NULL,
    gift_message VARCHAR(255) NOT NULL,
    PRIMARY KEY (order_id, line),
    KEY k_product (product_id)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  `CREATE TABLE shop.order_status_log (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    order_id BIGINT NOT NULL,
    old_status VARCHAR(16) NOT NULL,
    new_status VARCHAR(16) NOT NULL,
    changed_at DATETIME(6) NOT NULL,
    KEY k_order (order_id)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  // Append-only; the writer adds rows with its own clock (client_ts, UTC) and a sequence number (seq).
  `CREATE TABLE logs.events (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    seq BIGINT NOT NULL,
    client_ts DATETIME(6) NOT NULL,
    source VARCHAR(32) NOT NULL,
    level TINYINT NOT NULL,
    trace_id BINARY(16) NOT NULL,
    message VARCHAR(255) NOT NULL,
    payload TEXT NOT NULL,
    UNIQUE KEY uk_seq (seq),
    KEY k_client_ts (client_ts),
    KEY k_source_level (source, level)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
];

export const OBJECTS_DDL: string[] = [
  `CREATE SQL SECURITY INVOKER VIEW shop.order_summary AS
    SELECT o.id AS order_id, o.created_at, o.status, o.total, c.id AS customer_id, c.email, c.country
    FROM shop.orders o JOIN shop.customers c ON c.id = o.customer_id`,
  `CREATE TRIGGER shop.orders_status_audit AFTER UPDATE ON shop.orders FOR EACH ROW
    BEGIN
      IF NEW.status <> OLD.status THEN
        INSERT INTO shop.order_status_log (order_id, old_status, new_status, changed_at)
        VALUES (NEW.id, OLD.status, NEW.status, NOW(6));
      END IF;
    END`,
  `CREATE FUNCTION shop.order_total(p_order BIGINT) RETURNS DECIMAL(14,2)
    READS SQL DATA SQL SECURITY INVOKER
    RETURN (SELECT COALESCE(SUM(qty * unit_price), 0) FROM shop.order_items WHERE order_id = p_order)`,
  `CREATE PROCEDURE hr.give_raise(IN p_dept INT, IN p_percent DECIMAL(5,2))
    MODIFIES SQL DATA SQL SECURITY INVOKER
    UPDATE hr.employees SET salary = ROUND(salary * (1 + p_percent / 100), 2) WHERE dept_id = p_dept`,
  // Disabled: it exists so backups have an event to carry, but never changes data.
  `CREATE EVENT logs.purge_old_events ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00' DISABLE
    DO DELETE FROM logs.events WHERE client_ts < NOW() - INTERVAL 10 YEAR`,
];
