-- A small, realistic multi-database sample for the demo and the tests.
-- Comments in more than one language, primary and foreign keys (one across databases), views, a generated column.
CREATE DATABASE IF NOT EXISTS shop CHARACTER SET utf8mb4 COMMENT 'Online shop: orders and customers';
CREATE DATABASE IF NOT EXISTS billing CHARACTER SET utf8mb4 COMMENT '결제와 청구서';
CREATE DATABASE IF NOT EXISTS analytics CHARACTER SET utf8mb4;
CREATE DATABASE IF NOT EXISTS scratch_tmp CHARACTER SET utf8mb4;

CREATE TABLE IF NOT EXISTS shop.customers (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT COMMENT 'Customer id',
  email VARCHAR(255) NOT NULL COMMENT 'Login e-mail, unique',
  name VARCHAR(100) NULL COMMENT '고객 이름',
  country CHAR(2) NOT NULL DEFAULT 'KR' COMMENT 'ISO 3166-1 alpha-2',
  created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP COMMENT 'Signup time',
  updated_at TIMESTAMP NULL DEFAULT NULL ON UPDATE CURRENT_TIMESTAMP,
  PRIMARY KEY (id),
  UNIQUE KEY uq_email (email)
) ENGINE=InnoDB COMMENT='Registered customers';

CREATE TABLE IF NOT EXISTS shop.orders (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  customer_id BIGINT UNSIGNED NOT NULL COMMENT 'Who ordered',
  status ENUM('new','paid','shipped','cancelled') NOT NULL DEFAULT 'new' COMMENT 'Order state',
  total DECIMAL(12,2) NOT NULL COMMENT 'Total in KRW',
  total_with_vat DECIMAL(12,2) AS (total * 1.1) VIRTUAL COMMENT 'Computed',
  ordered_at DATETIME NOT NULL,
  PRIMARY KEY (id),
  CONSTRAINT fk_orders_customer FOREIGN KEY (customer_id) REFERENCES shop.customers (id) ON DELETE CASCADE
) ENGINE=InnoDB COMMENT='Orders, one row per checkout';

CREATE TABLE IF NOT EXISTS shop.order_items (
  order_id BIGINT UNSIGNED NOT NULL,
  line_no INT NOT NULL,
  sku VARCHAR(32) NOT NULL COMMENT 'Stock keeping unit',
  qty INT NOT NULL DEFAULT 1,
  PRIMARY KEY (order_id, line_no),
  CONSTRAINT fk_items_order FOREIGN KEY (order_id) REFERENCES shop.orders (id)
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS shop.tmp_import (raw TEXT) ENGINE=InnoDB COMMENT='Denied by table_pattern';

CREATE OR REPLACE VIEW shop.paid_orders AS
  SELECT o.id, o.customer_id, c.email, o.total FROM shop.orders o JOIN shop.customers c ON c.id = o.customer_id
  WHERE o.status = 'paid';

-- A stored procedure: catalogued as a DataJob when the account may see routine text (README: Least privilege)
CREATE OR REPLACE PROCEDURE shop.mark_paid(IN p_order BIGINT UNSIGNED) COMMENT 'Marks one order paid'
  UPDATE shop.orders SET status = 'paid' WHERE id = p_order;

CREATE TABLE IF NOT EXISTS billing.invoices (
  id INT NOT NULL AUTO_INCREMENT COMMENT '청구서 번호',
  order_id BIGINT UNSIGNED NOT NULL COMMENT '주문 번호 (shop.orders)',
  amount DECIMAL(12,2) NOT NULL COMMENT '금액',
  issued_on DATE NOT NULL COMMENT '발행일',
  PRIMARY KEY (id),
  CONSTRAINT fk_invoice_order FOREIGN KEY (order_id) REFERENCES shop.orders (id)
) ENGINE=InnoDB COMMENT='발행된 청구서';

CREATE TABLE IF NOT EXISTS billing.payments (
  id INT NOT NULL AUTO_INCREMENT,
  invoice_id INT NOT NULL,
  paid_at DATETIME(3) NOT NULL COMMENT 'Zahlungszeitpunkt',
  method VARCHAR(16) NOT NULL COMMENT 'Zahlungsart: card, transfer',
  PRIMARY KEY (id),
  CONSTRAINT fk_payment_invoice FOREIGN KEY (invoice_id) REFERENCES billing.invoices (id)
) ENGINE=InnoDB COMMENT='Zahlungen';

CREATE OR REPLACE VIEW billing.open_invoices AS
  SELECT i.id, i.amount, i.issued_on FROM billing.invoices i
  LEFT JOIN billing.payments p ON p.invoice_id = i.id WHERE p.id IS NULL;

CREATE TABLE IF NOT EXISTS analytics.daily_sales (
  day DATE NOT NULL,
  country CHAR(2) NOT NULL,
  revenue DECIMAL(14,2) NOT NULL,
  orders INT NOT NULL,
  PRIMARY KEY (day, country)
) ENGINE=InnoDB COMMENT='Revenue per day and country';

CREATE TABLE IF NOT EXISTS scratch_tmp.junk (x INT);
